//! Model-checks the kfifo single-producer/single-consumer protocol with loom.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p kds --test kfifo_loom --release`
//! (scripts/loom-test). Under loom the fifo's indices are loom atomics and every buffer slot a
//! loom cell (see `kds::sync`), so loom explores the interleavings of one producer and one
//! consumer and reports any read of a slot not ordered after its write, or any overwrite of a
//! slot not ordered after its read: exactly the acquire/release pairs the module relies on.
#![cfg(loom)]
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use kds::kfifo::Kfifo;
use loom::sync::Arc;
use loom::thread;

/// The producer pushes 1..=N through a 2-slot fifo (so it must wait for the consumer and the
/// ring wraps); the consumer must see exactly 1..=N in order.
fn run(n: u32, slice: bool) {
    loom::model(move || {
        let f = Arc::new(Kfifo::<u32, 2>::new());
        let p = f.clone();
        let prod = thread::spawn(move || {
            let mut next = 1;
            while next <= n {
                let k = if slice {
                    let batch = [next, next + 1];
                    let len = if next < n { 2 } else { 1 };
                    // SAFETY: this thread is the only producer.
                    unsafe { p.in_unchecked(&batch[..len]) }
                } else {
                    // SAFETY: this thread is the only producer.
                    unsafe { p.in_unchecked(&[next]) }
                };
                if k == 0 {
                    thread::yield_now();
                }
                next += k as u32;
            }
        });
        let mut want = 1;
        let mut buf = [0u32; 2];
        while want <= n {
            // SAFETY: the main thread is the only consumer.
            let k = unsafe { f.out_unchecked(&mut buf) };
            if k == 0 {
                thread::yield_now();
            }
            for v in &buf[..k] {
                assert_eq!(*v, want);
                want += 1;
            }
        }
        prod.join().unwrap();
        assert!(f.is_empty());
    });
}

#[test]
fn spsc_single_elements_wrap() {
    run(3, false);
}

#[test]
fn spsc_slices_wrap() {
    run(3, true);
}

#[test]
fn spsc_split_handles() {
    loom::model(|| {
        // Split handles need `&mut` then share by reference across a scoped-like join: loom
        // threads need 'static, so leak one fifo per model iteration (tiny).
        let f: &'static mut Kfifo<u32, 2> = Box::leak(Box::new(Kfifo::new()));
        let (mut p, mut c) = f.split();
        let prod = thread::spawn(move || {
            let mut i = 1;
            while i <= 3 {
                if p.put(i) {
                    i += 1;
                } else {
                    thread::yield_now();
                }
            }
        });
        let mut want = 1;
        while want <= 3 {
            match c.get() {
                Some(v) => {
                    assert_eq!(v, want);
                    want += 1;
                }
                None => thread::yield_now(),
            }
        }
        prod.join().unwrap();
    });
}
