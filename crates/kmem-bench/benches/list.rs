//! kds lists against intrusive-collections' `LinkedList` (same workload, same items).
//!
//! - `push_back_pop_front`: link 1000 items at the tail, then unlink them all from the head.
//! - `push_front_pop_back`: the mirror image.
//! - `iterate_sum`: walk a 1000-item list summing a field.
//! - `cursor_remove_every_other`: walk with a cursor removing every second item, then
//!   re-insert them.
//!
//! `kds_list` is the safe `List`; `kds_raw` the Linux-named raw layer (`list_add_tail`,
//! `list_del`), for reference.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intrusive_collections::{intrusive_adapter, LinkedList, LinkedListLink};
use kds::list::{self as klist, Link, List, ListHead};

const N: usize = 1000;

struct KItem {
    val: u64,
    link: Link,
}
kds::define_list_adapter!(KAdapter = KItem { link });

struct IItem {
    val: u64,
    link: LinkedListLink,
}
intrusive_adapter!(IAdapter<'a> = &'a IItem: IItem { link: LinkedListLink });

#[repr(C)]
struct RItem {
    val: u64,
    link: ListHead,
}

fn items() -> (Vec<KItem>, Vec<IItem>, Vec<RItem>) {
    (
        (0..N as u64)
            .map(|val| KItem {
                val,
                link: Link::new(),
            })
            .collect(),
        (0..N as u64)
            .map(|val| IItem {
                val,
                link: LinkedListLink::new(),
            })
            .collect(),
        (0..N as u64)
            .map(|val| RItem {
                val,
                link: ListHead::new(),
            })
            .collect(),
    )
}

fn push_pop(c: &mut Criterion) {
    let (k, i, mut r) = items();
    let mut g = c.benchmark_group("list_push_back_pop_front");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("kds_list", |b| {
        b.iter(|| {
            let mut l = List::<KAdapter>::new();
            for it in &k {
                let _ = l.push_back(it);
            }
            let mut s = 0;
            while let Some(it) = l.pop_front() {
                s += it.val;
            }
            black_box(s)
        })
    });
    g.bench_function("intrusive_collections", |b| {
        b.iter(|| {
            let mut l = LinkedList::new(IAdapter::new());
            for it in &i {
                l.push_back(it);
            }
            let mut s = 0;
            while let Some(it) = l.pop_front() {
                s += it.val;
            }
            black_box(s)
        })
    });
    g.bench_function("kds_raw", |b| {
        b.iter(|| {
            let mut head = ListHead::new();
            let mut s = 0;
            // SAFETY: `head` and the items outlive the list, which is emptied before return.
            unsafe {
                ListHead::init(&mut head);
                for it in r.iter_mut() {
                    klist::list_add_tail(&mut it.link, &mut head);
                }
                while let Some(n) = klist::list_first(&head) {
                    klist::list_del(n);
                    s += (*kds::container_of!(n, RItem, link)).val;
                }
            }
            black_box(s)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("list_push_front_pop_back");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("kds_list", |b| {
        b.iter(|| {
            let mut l = List::<KAdapter>::new();
            for it in &k {
                let _ = l.push_front(it);
            }
            let mut s = 0;
            while let Some(it) = l.pop_back() {
                s += it.val;
            }
            black_box(s)
        })
    });
    g.bench_function("intrusive_collections", |b| {
        b.iter(|| {
            let mut l = LinkedList::new(IAdapter::new());
            for it in &i {
                l.push_front(it);
            }
            let mut s = 0;
            while let Some(it) = l.pop_back() {
                s += it.val;
            }
            black_box(s)
        })
    });
    g.finish();
}

fn iterate(c: &mut Criterion) {
    let (k, i, _) = items();
    let mut g = c.benchmark_group("list_iterate_sum");
    g.throughput(Throughput::Elements(N as u64));
    let mut kl = List::<KAdapter>::new();
    for it in &k {
        let _ = kl.push_back(it);
    }
    g.bench_function("kds_list", |b| {
        b.iter(|| black_box(kl.iter().map(|x| x.val).sum::<u64>()))
    });
    let mut il = LinkedList::new(IAdapter::new());
    for it in &i {
        il.push_back(it);
    }
    g.bench_function("intrusive_collections", |b| {
        b.iter(|| black_box(il.iter().map(|x| x.val).sum::<u64>()))
    });
    g.finish();
    kl.clear();
    il.fast_clear();
}

fn cursor(c: &mut Criterion) {
    let (k, i, _) = items();
    let mut g = c.benchmark_group("list_cursor_remove_every_other");
    g.throughput(Throughput::Elements(N as u64));
    let mut kl = List::<KAdapter>::new();
    for it in &k {
        let _ = kl.push_back(it);
    }
    g.bench_function("kds_list", |b| {
        b.iter(|| {
            let mut c = kl.cursor_front_mut();
            let mut removed = Vec::with_capacity(N / 2);
            while c.current().is_some() {
                c.move_next();
                if let Some(x) = c.remove_current() {
                    removed.push(x);
                }
            }
            for x in removed {
                let _ = kl.push_back(x);
            }
        })
    });
    let mut il = LinkedList::new(IAdapter::new());
    for it in &i {
        il.push_back(it);
    }
    g.bench_function("intrusive_collections", |b| {
        b.iter(|| {
            let mut c = il.front_mut();
            let mut removed = Vec::with_capacity(N / 2);
            while !c.is_null() {
                c.move_next();
                if let Some(x) = c.remove() {
                    removed.push(x);
                }
            }
            for x in removed {
                il.push_back(x);
            }
        })
    });
    g.finish();
    kl.clear();
    il.fast_clear();
}

criterion_group!(benches, push_pop, iterate, cursor);
criterion_main!(benches);
