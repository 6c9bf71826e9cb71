//! kds kfifo against the Rust SPSC ring buffers: rtrb, ringbuf, heapless::spsc and
//! crossbeam's ArrayQueue.
//!
//! - `spsc_u64`: one producer thread sends `N` 8-byte elements to one consumer thread through
//!   a 1024-slot ring, element by element (`kfifo_put`/`kfifo_get` on the split handles).
//! - `spsc_1k_slices`: 1 KiB byte slices through a 64 KiB byte ring, with each queue's bulk
//!   API where it has one (kfifo `kfifo_in`/`kfifo_out`, rtrb chunks, ringbuf slices); heapless
//!   and crossbeam have no slice API and move the bytes one by one.
//! - `single_thread`: `kfifo_in` + `kfifo_out` of 8 bytes on one thread, and peers.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kds::kfifo::{kfifo_alloc, GlobalAllocator, Kfifo};
use std::alloc::System;

const N: u64 = 1 << 18;
const CAP: usize = 1024;
const BYTES: usize = 4 << 20;
const CHUNK: usize = 1024;
const BYTE_CAP: usize = 64 * 1024;

/// Waits a little for the other side: spins, and yields the CPU now and then so a
/// descheduled partner on a busy 2-core machine can run (the same for every queue).
fn spin() {
    use std::cell::Cell;
    thread_local!(static SPINS: Cell<u32> = const { Cell::new(0) });
    SPINS.with(|s| {
        let n = s.get().wrapping_add(1);
        s.set(n);
        if n % 128 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    });
}

fn spsc_u64(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_u64");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);

    g.bench_function("kds_kfifo", |b| {
        b.iter(|| {
            let mut f = kfifo_alloc::<u64, _>(CAP, GlobalAllocator(System)).unwrap();
            let (mut p, mut c) = f.split();
            std::thread::scope(|s| {
                s.spawn(move || {
                    for i in 0..N {
                        while !p.put(i) {
                            spin();
                        }
                    }
                });
                let mut sum = 0u64;
                for _ in 0..N {
                    loop {
                        if let Some(v) = c.get() {
                            sum = sum.wrapping_add(v);
                            break;
                        }
                        spin();
                    }
                }
                black_box(sum)
            })
        })
    });

    g.bench_function("rtrb", |b| {
        b.iter(|| {
            let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAP);
            std::thread::scope(|s| {
                s.spawn(move || {
                    for i in 0..N {
                        while p.push(i).is_err() {
                            spin();
                        }
                    }
                });
                let mut sum = 0u64;
                for _ in 0..N {
                    loop {
                        if let Ok(v) = c.pop() {
                            sum = sum.wrapping_add(v);
                            break;
                        }
                        spin();
                    }
                }
                black_box(sum)
            })
        })
    });

    g.bench_function("ringbuf", |b| {
        use ringbuf::traits::{Consumer, Producer, Split};
        b.iter(|| {
            let rb = ringbuf::HeapRb::<u64>::new(CAP);
            let (mut p, mut c) = rb.split();
            std::thread::scope(|s| {
                s.spawn(move || {
                    for i in 0..N {
                        while p.try_push(i).is_err() {
                            spin();
                        }
                    }
                });
                let mut sum = 0u64;
                for _ in 0..N {
                    loop {
                        if let Some(v) = c.try_pop() {
                            sum = sum.wrapping_add(v);
                            break;
                        }
                        spin();
                    }
                }
                black_box(sum)
            })
        })
    });

    g.bench_function("heapless_spsc", |b| {
        b.iter(|| {
            // heapless 0.8 holds N - 1 elements; 1025 slots give the same 1024 capacity.
            let mut q: Box<heapless::spsc::Queue<u64, { CAP + 1 }>> = Box::default();
            let (mut p, mut c) = q.split();
            std::thread::scope(|s| {
                s.spawn(move || {
                    for i in 0..N {
                        while p.enqueue(i).is_err() {
                            spin();
                        }
                    }
                });
                let mut sum = 0u64;
                for _ in 0..N {
                    loop {
                        if let Some(v) = c.dequeue() {
                            sum = sum.wrapping_add(v);
                            break;
                        }
                        spin();
                    }
                }
                black_box(sum)
            })
        })
    });

    g.bench_function("crossbeam_array_queue", |b| {
        b.iter(|| {
            let q = crossbeam_queue::ArrayQueue::<u64>::new(CAP);
            std::thread::scope(|s| {
                s.spawn(|| {
                    for i in 0..N {
                        while q.push(i).is_err() {
                            spin();
                        }
                    }
                });
                let mut sum = 0u64;
                for _ in 0..N {
                    loop {
                        if let Some(v) = q.pop() {
                            sum = sum.wrapping_add(v);
                            break;
                        }
                        spin();
                    }
                }
                black_box(sum)
            })
        })
    });
    g.finish();
}

fn spsc_slices(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_1k_slices");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(10);
    let src = vec![0xA5u8; CHUNK];

    g.bench_function("kds_kfifo", |b| {
        b.iter(|| {
            let mut f = kfifo_alloc::<u8, _>(BYTE_CAP, GlobalAllocator(System)).unwrap();
            let (mut p, mut c) = f.split();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut sent = 0;
                    while sent < BYTES {
                        let mut off = 0;
                        while off < CHUNK {
                            let k = p.push_slice(&src[off..]);
                            if k == 0 {
                                spin();
                            }
                            off += k;
                        }
                        sent += CHUNK;
                    }
                });
                let mut buf = [0u8; CHUNK];
                let mut got = 0;
                while got < BYTES {
                    let k = c.pop_slice(&mut buf);
                    if k == 0 {
                        spin();
                    }
                    got += k;
                }
                black_box(buf[0])
            })
        })
    });

    g.bench_function("rtrb", |b| {
        b.iter(|| {
            let (mut p, mut c) = rtrb::RingBuffer::<u8>::new(BYTE_CAP);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut sent = 0;
                    while sent < BYTES {
                        let mut off = 0;
                        while off < CHUNK {
                            let n = p.slots().min(CHUNK - off);
                            if n == 0 {
                                spin();
                                continue;
                            }
                            let mut chunk = p.write_chunk(n).unwrap();
                            let (a, bb) = chunk.as_mut_slices();
                            let la = a.len();
                            a.copy_from_slice(&src[off..off + la]);
                            bb.copy_from_slice(&src[off + la..off + n]);
                            chunk.commit_all();
                            off += n;
                        }
                        sent += CHUNK;
                    }
                });
                let mut buf = [0u8; CHUNK];
                let mut got = 0;
                while got < BYTES {
                    let n = c.slots().min(CHUNK);
                    if n == 0 {
                        spin();
                        continue;
                    }
                    let chunk = c.read_chunk(n).unwrap();
                    let (a, bb) = chunk.as_slices();
                    buf[..a.len()].copy_from_slice(a);
                    buf[a.len()..n].copy_from_slice(bb);
                    chunk.commit_all();
                    got += n;
                }
                black_box(buf[0])
            })
        })
    });

    g.bench_function("ringbuf", |b| {
        use ringbuf::traits::{Consumer, Producer, Split};
        b.iter(|| {
            let rb = ringbuf::HeapRb::<u8>::new(BYTE_CAP);
            let (mut p, mut c) = rb.split();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut sent = 0;
                    while sent < BYTES {
                        let mut off = 0;
                        while off < CHUNK {
                            let k = p.push_slice(&src[off..]);
                            if k == 0 {
                                spin();
                            }
                            off += k;
                        }
                        sent += CHUNK;
                    }
                });
                let mut buf = [0u8; CHUNK];
                let mut got = 0;
                while got < BYTES {
                    let k = c.pop_slice(&mut buf);
                    if k == 0 {
                        spin();
                    }
                    got += k;
                }
                black_box(buf[0])
            })
        })
    });

    g.bench_function("heapless_spsc_bytewise", |b| {
        b.iter(|| {
            let mut q: Box<heapless::spsc::Queue<u8, { BYTE_CAP + 1 }>> = Box::default();
            let (mut p, mut c) = q.split();
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..BYTES / CHUNK {
                        for &x in &src {
                            while p.enqueue(x).is_err() {
                                spin();
                            }
                        }
                    }
                });
                let mut buf = [0u8; CHUNK];
                for _ in 0..BYTES / CHUNK {
                    for slot in buf.iter_mut() {
                        *slot = loop {
                            if let Some(v) = c.dequeue() {
                                break v;
                            }
                            spin();
                        };
                    }
                }
                black_box(buf[0])
            })
        })
    });

    g.bench_function("crossbeam_array_queue_bytewise", |b| {
        b.iter(|| {
            let q = crossbeam_queue::ArrayQueue::<u8>::new(BYTE_CAP);
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..BYTES / CHUNK {
                        for &x in &src {
                            while q.push(x).is_err() {
                                spin();
                            }
                        }
                    }
                });
                let mut buf = [0u8; CHUNK];
                for _ in 0..BYTES / CHUNK {
                    for slot in buf.iter_mut() {
                        *slot = loop {
                            if let Some(v) = q.pop() {
                                break v;
                            }
                            spin();
                        };
                    }
                }
                black_box(buf[0])
            })
        })
    });
    g.finish();
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_thread_8_bytes");
    g.bench_function(BenchmarkId::new("kds_kfifo", "in+out 8 bytes"), |b| {
        let mut f = Kfifo::<u8, 4096>::new();
        let src = [7u8; 8];
        let mut dst = [0u8; 8];
        b.iter(|| {
            f.push_slice(black_box(&src));
            f.pop_slice(black_box(&mut dst));
            black_box(dst[0])
        })
    });
    g.bench_function(
        BenchmarkId::new("kds_kfifo", "in+out 8 bytes by value"),
        |b| {
            // The same, with the bytes passed as values: `black_box` on a pointer makes the
            // compiler assume all memory changed, so the variant above re-reads both indices.
            let mut f = Kfifo::<u8, 4096>::new();
            b.iter(|| {
                let src = black_box(0x0102_0304_0506_0708u64).to_ne_bytes();
                let mut dst = [0u8; 8];
                f.push_slice(&src);
                f.pop_slice(&mut dst);
                black_box(u64::from_ne_bytes(dst))
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("kds_kfifo", "in+out one u64 element"),
        |b| {
            let mut f = Kfifo::<u64, 512>::new();
            b.iter(|| {
                f.push_slice(&[black_box(7u64)]);
                let mut d = [0u64; 1];
                f.pop_slice(&mut d);
                black_box(d[0])
            })
        },
    );
    g.bench_function(BenchmarkId::new("kds_kfifo", "put+get u64"), |b| {
        let mut f = Kfifo::<u64, 512>::new();
        // `black_box` of the `Option` itself costs several ns (it is spilled and reloaded),
        // so the value is unwrapped first, here and for rtrb.
        b.iter(|| {
            f.put(black_box(7));
            black_box(f.get().unwrap_or(0))
        })
    });
    g.bench_function(
        BenchmarkId::new("ringbuf", "push_slice+pop_slice 8 bytes"),
        |b| {
            use ringbuf::traits::{Consumer, Producer, Split};
            let rb = ringbuf::HeapRb::<u8>::new(4096);
            let (mut p, mut c) = rb.split();
            let src = [7u8; 8];
            let mut dst = [0u8; 8];
            b.iter(|| {
                p.push_slice(black_box(&src));
                c.pop_slice(black_box(&mut dst));
                black_box(dst[0])
            })
        },
    );
    g.bench_function(BenchmarkId::new("rtrb", "push+pop u64"), |b| {
        let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(512);
        b.iter(|| {
            let _ = p.push(black_box(7));
            black_box(c.pop().unwrap_or(0))
        })
    });
    g.finish();
}

criterion_group!(benches, spsc_u64, spsc_slices, single_thread);
criterion_main!(benches);
