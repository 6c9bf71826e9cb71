//! `<linux/kfifo.h>` in action: a byte stream, a typed producer/consumer pair on two threads
//! without a lock, a record fifo of log lines, and DMA scatter-gather segments.
//!
//! Run with `cargo run -p kds --example kfifo_demo`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use kds::kfifo::*;
use std::alloc::System;

fn main() {
    // 1. A static byte fifo (DEFINE_KFIFO(fifo, u8, 16)).
    let mut bytes = Kfifo::<u8, 16>::new();
    let n = kfifo_in(&mut bytes, b"hello, kernel world");
    println!(
        "byte fifo: size {}, wrote {n} of 19 bytes (partial write), len {}",
        kfifo_size(&bytes),
        kfifo_len(&bytes)
    );
    let mut out = [0u8; 7];
    let n = kfifo_out(&mut bytes, &mut out);
    println!(
        "  read {:?}, {} left, avail {}",
        std::str::from_utf8(&out[..n]).unwrap(),
        kfifo_len(&bytes),
        kfifo_avail(&bytes)
    );

    // 2. An allocated u64 fifo shared by a producer and a consumer thread (no lock).
    let mut events = kfifo_alloc::<u64, _>(1000, GlobalAllocator(System)).expect("allocation");
    println!(
        "\nu64 fifo: asked for 1000 elements, got {} (rounded up to a power of two)",
        events.size()
    );
    let (mut tx, mut rx) = events.split();
    let total: u64 = std::thread::scope(|s| {
        s.spawn(move || {
            for i in 1..=100_000u64 {
                while !tx.put(i) {
                    std::hint::spin_loop();
                }
            }
        });
        s.spawn(move || {
            let mut sum = 0;
            let mut seen = 0;
            let mut buf = [0u64; 64];
            while seen < 100_000 {
                let k = rx.pop_slice(&mut buf);
                sum += buf[..k].iter().sum::<u64>();
                seen += k;
            }
            sum
        })
        .join()
        .unwrap()
    });
    println!(
        "  consumer summed 1..=100000 = {total} (expected {})",
        100_000u64 * 100_001 / 2
    );

    // 3. A record fifo (STRUCT_KFIFO_REC_1(64)): variable-length messages.
    let mut log = KfifoRecInline::<64, 1>::new();
    for msg in [
        "boot",
        "mount /",
        "start sshd",
        "this message is far too long to fit in what is left",
    ] {
        let stored = kfifo_in(&mut log, msg.as_bytes());
        println!(
            "record in {msg:?}: {}",
            if stored > 0 {
                "stored"
            } else {
                "rejected (all or nothing)"
            }
        );
    }
    println!("  next record length: {}", kfifo_peek_len(&log));
    let mut line = [0u8; 2];
    let n = kfifo_out(&mut log, &mut line);
    println!(
        "  out into a 2-byte buffer: {:?} (truncated, whole record consumed)",
        std::str::from_utf8(&line[..n]).unwrap()
    );
    let mut line = [0u8; 64];
    while !kfifo_is_empty(&log) {
        let n = kfifo_out(&mut log, &mut line);
        println!("  out: {:?}", std::str::from_utf8(&line[..n]).unwrap());
    }

    // 4. DMA: where a device would write into the free space.
    let mut rx_ring = Kfifo::<u8, 32>::new();
    rx_ring.push_slice(&[0; 13]);
    rx_ring.skip(13);
    let sg = rx_ring.dma_in_prepare(24);
    println!("\ndma_in_prepare(24) with in = 13: {} segment(s)", sg.len());
    for (i, s) in sg.as_slice().iter().enumerate() {
        println!("  sg[{i}]: {} bytes", s.len);
    }
    for s in sg.as_slice() {
        // Pretend the device wrote a pattern.
        for k in 0..s.len {
            // SAFETY: the segment is `s.len` bytes of the fifo's free space.
            unsafe { *s.addr.add(k) = b'A' + (k % 26) as u8 };
        }
    }
    // SAFETY: the device wrote all 24 bytes of the segments.
    unsafe { rx_ring.dma_in_finish(sg.total()) };
    println!("  after dma_in_finish: len {}", rx_ring.len());
}
