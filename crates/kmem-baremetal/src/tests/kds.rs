//! kds, the kernel data structures, used as kernel code uses them: intrusive list nodes living in
//! a page from the buddy allocator, sorted with `list_sort`; multiplicative hashing; a kfifo.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use core::mem::size_of;

use alloc::boxed::Box;
use alloc::vec::Vec;

use kds::list::{self, ListHead};
use kmem::platform::Platform;
use kmem::{GfpFlags, PAGE_SIZE};

use super::{settle, KernelCtx};
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    kds_list_in_a_page,
    kds_hash_values,
    kds_hashtable_of_kmalloc_objects,
    kds_plist_priority_order,
    kds_kfifo_ring,
    kds_xarray_page_cache,
    kds_idr_and_ida_ids,
    kds_btree_matches_btreemap,
];

/// A list element, as a kernel struct embeds `struct list_head`.
#[repr(C)]
struct Item {
    link: ListHead,
    key: u32,
    seq: u32,
}

const NR_ITEMS: usize = PAGE_SIZE / size_of::<Item>() - 1;

fn kds_list_in_a_page(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let page = mm.get_zeroed_page(GfpFlags::GFP_KERNEL);
    check!(page.is_some(), "no page for the list");
    let page = page.expect("checked");
    let base = page.as_ptr::<Item>();
    // The head lives in the page too (slot 0); items in slots 1..=NR_ITEMS.
    let head = base.cast::<ListHead>();
    let plat = mm.platform();
    let result = (|| -> TestResult {
        // SAFETY: the page is ours and holds NR_ITEMS + 1 `Item`s; every node is initialised
        // before it is linked, and all are linked only into `head`, which lives as long as the
        // page.
        unsafe {
            list::INIT_LIST_HEAD(head);
            check!(list::list_empty(head));
            for i in 0..NR_ITEMS {
                let item = base.add(i + 1);
                item.write(Item {
                    link: ListHead::new(),
                    key: (plat.random_u64() % 16) as u32,
                    seq: i as u32,
                });
                list::list_add_tail(core::ptr::addr_of_mut!((*item).link), head);
            }
            check_eq!(list::list_count_nodes(head), NR_ITEMS);
            // Sort by key; equal keys must keep insertion order (list_sort is stable).
            list::list_sort(head, |a, b| {
                let (a, b) = (
                    &*kds::list_entry!(a, Item, link),
                    &*kds::list_entry!(b, Item, link),
                );
                a.key as i32 - b.key as i32
            });
            let mut prev: Option<(u32, u32)> = None;
            let mut n = 0;
            for node in list::list_for_each(head) {
                let item = &*kds::list_entry!(node, Item, link);
                if let Some((k, s)) = prev {
                    check!(
                        k < item.key || (k == item.key && s < item.seq),
                        "not sorted/stable at {n}"
                    );
                }
                prev = Some((item.key, item.seq));
                n += 1;
            }
            check_eq!(n, NR_ITEMS);
            // Delete every item with an odd sequence number while iterating (the _safe walk).
            for node in list::list_for_each_safe(head) {
                if (*kds::list_entry!(node, Item, link)).seq % 2 == 1 {
                    list::list_del(node);
                }
            }
            check_eq!(list::list_count_nodes(head), NR_ITEMS.div_ceil(2));
            // Backwards walk sees the same nodes in reverse order.
            let first = (*kds::list_first_entry!(head, Item, link)).seq;
            let last_rev = list::list_for_each_prev(head)
                .last()
                .map(|n| (*kds::list_entry!(n, Item, link)).seq);
            check_eq!(last_rev, Some(first));
        }
        Ok(())
    })();
    mm.free_page(page);
    result
}

fn kds_hash_values(_: &KernelCtx) -> TestResult {
    use kds::hash::{hash_32, hash_64, GOLDEN_RATIO_32, GOLDEN_RATIO_64};
    // include/linux/hash.h: the top `bits` bits of the product with the golden ratio.
    for (i, val) in [0u64, 1, 0x1234_5678, 0xdead_beef_cafe_f00d, u64::MAX]
        .into_iter()
        .enumerate()
    {
        let bits = 1 + (i as u32 * 7) % 32;
        check_eq!(
            hash_64(val, bits),
            (val.wrapping_mul(GOLDEN_RATIO_64) >> (64 - bits)) as u32
        );
        let v32 = val as u32;
        check_eq!(
            hash_32(v32, bits),
            v32.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
        );
    }
    // Spread: 4096 consecutive keys into 256 buckets leave no bucket empty or overfull.
    let mut buckets = [0u16; 256];
    for k in 0..4096u64 {
        buckets[hash_64(k, 8) as usize] += 1;
    }
    let (min, max) = (buckets.iter().min().copied(), buckets.iter().max().copied());
    check!(
        min > Some(0) && max < Some(64),
        "poor spread: min {min:?} max {max:?}"
    );
    Ok(())
}

/// A kernel object hashed by id, as `struct` with an embedded `hlist_node` in a
/// `DEFINE_HASHTABLE`.
#[repr(C)]
struct Obj {
    node: kds::hlist::HlistNode,
    id: u32,
}

fn kds_hashtable_of_kmalloc_objects(ctx: &KernelCtx) -> TestResult {
    use kds::hashtable::{
        hash_add, hash_del, hash_empty, hash_for_each, hash_for_each_possible, hash_init,
    };
    let mm = ctx.mm;
    let mut table: Vec<kds::hlist::HlistHead> =
        (0..64).map(|_| kds::hlist::HlistHead::new()).collect();
    hash_init(&mut table);
    // The objects are kmalloc'd (Box on the kernel heap) and never move while hashed.
    let mut objs: Vec<Box<Obj>> = (0..500u32)
        .map(|i| {
            Box::new(Obj {
                node: kds::hlist::HlistNode::new(),
                id: i.wrapping_mul(2_654_435_761),
            })
        })
        .collect();
    // A 24-byte object: kmalloc-32 (SLOB, or a KFENCE object: exactly 24 bytes).
    let slob = mm.slab_allocator() == kmem::slab::common::SlabAllocatorKind::Slob;
    let first = &*objs[0] as *const Obj as *const u8;
    let exact = slob || mm.is_kfence_address(first);
    check_eq!(mm.ksize(first), if exact { 24 } else { 32 });
    let find = |table: &[kds::hlist::HlistHead], id: u32| -> usize {
        // SAFETY: every hashed node belongs to a live `Obj` in `objs`.
        unsafe {
            hash_for_each_possible(table, id)
                .filter(|&n| (*kds::container_of!(n, Obj, node)).id == id)
                .count()
        }
    };
    for o in objs.iter_mut() {
        let id = o.id;
        // SAFETY: the node is initialised, not hashed, and outlives its time in the table.
        unsafe { hash_add(&mut table, &mut o.node, id) };
    }
    // SAFETY: every node hashed above is an element of `objs`, which is neither moved nor dropped
    // while the iterator runs, and the loop deletes nothing (`hash_for_each`'s contract).
    check_eq!(unsafe { hash_for_each(&table) }.count(), 500);
    for o in &objs {
        check_eq!(find(&table, o.id), 1);
    }
    check_eq!(find(&table, 12345), 0);
    for o in objs.iter_mut().step_by(2) {
        // SAFETY: the node is hashed in `table`.
        unsafe { hash_del(&mut o.node) };
    }
    for (i, o) in objs.iter().enumerate() {
        check_eq!(find(&table, o.id), i % 2);
    }
    for o in objs.iter_mut().skip(1).step_by(2) {
        // SAFETY: the node is hashed in `table`.
        unsafe { hash_del(&mut o.node) };
    }
    check!(hash_empty(&table));
    Ok(())
}

fn kds_plist_priority_order(ctx: &KernelCtx) -> TestResult {
    use kds::plist::{
        plist_add, plist_check_head, plist_del, plist_for_each, plist_head_init, plist_node_init,
        PlistHead, PlistNode,
    };
    let plat = ctx.mm.platform();
    let mut head = Box::new(PlistHead::new());
    let mut nodes: Vec<PlistNode> = Vec::with_capacity(300);
    let head_p: *mut PlistHead = &mut *head;
    // SAFETY: the head is boxed (fixed address) and initialised before use; the nodes live in
    // `nodes`, whose buffer never reallocates (capacity reserved) while they are linked.
    unsafe {
        plist_head_init(head_p);
        for _ in 0..300 {
            nodes.push(PlistNode {
                prio: 0,
                prio_list: ListHead::new(),
                node_list: ListHead::new(),
            });
            let n: *mut PlistNode = nodes.last_mut().expect("pushed");
            plist_node_init(n, (plat.random_u64() % 40) as i32 - 20);
            plist_add(n, head_p);
        }
        check!(
            plist_check_head(head_p, Some(300)).is_ok(),
            "plist invariants after adds"
        );
        let prios: Vec<i32> = plist_for_each(head_p).map(|n| (*n).prio).collect();
        check_eq!(prios.len(), 300);
        check!(
            prios.windows(2).all(|w| w[0] <= w[1]),
            "plist not in priority order"
        );
        for n in nodes.iter_mut().step_by(3) {
            plist_del(n, head_p);
        }
        check!(
            plist_check_head(head_p, Some(200)).is_ok(),
            "plist invariants after deletes"
        );
        for n in nodes.iter_mut() {
            if !kds::plist::plist_node_empty(n) {
                plist_del(n, head_p);
            }
        }
        check!(kds::plist::plist_head_empty(head_p));
    }
    Ok(())
}

fn kds_kfifo_ring(_: &KernelCtx) -> TestResult {
    let mut fifo: kds::kfifo::Kfifo<u32, 64> = kds::kfifo::Kfifo::new();
    check_eq!((fifo.size(), fifo.len(), fifo.is_empty()), (64, 0, true));
    let data: [u32; 100] = core::array::from_fn(|i| i as u32 * 3);
    check_eq!(fifo.push_slice(&data), 64);
    check!(fifo.is_full());
    check!(!fifo.put(7), "put into a full fifo");
    let mut out = [0u32; 40];
    check_eq!(fifo.pop_slice(&mut out), 40);
    check!(out[..] == data[..40]);
    // Wrap around the end of the ring many times; FIFO order must hold throughout.
    let mut next_in = 64u32;
    let mut next_out = 40u32;
    for round in 0..500u32 {
        for _ in 0..(round % 7) {
            if fifo.put(next_in * 3) {
                next_in += 1;
            }
        }
        for _ in 0..(round % 5) {
            if let Some(v) = fifo.get() {
                check_eq!(v, next_out * 3);
                next_out += 1;
            }
        }
        check_eq!(fifo.len() as u32, next_in - next_out);
    }
    Ok(())
}

/// An XArray used as a page cache: file index → the PFN of a real page from the buddy
/// allocator (a value entry), dirty pages marked; nodes come from kmalloc.
fn kds_xarray_page_cache(ctx: &KernelCtx) -> TestResult {
    use kds::alloc::Gfp;
    use kds::xarray::{xa_mk_value, XArray, XA_MARK_0};
    let mm = ctx.mm;
    let free0 = settle(mm);
    {
        let cache = XArray::new_in(crate::heap::KernelNodeAlloc);
        let mut pages = Vec::new();
        for i in 0..96usize {
            let index = if i % 8 == 7 { (1 << 20) + i } else { i * 37 };
            let page = mm.alloc_page(GfpFlags::GFP_KERNEL);
            check!(page.is_some(), "alloc_page failed");
            let page = page.expect("checked");
            let pfn = mm.page_to_pfn(page).as_usize();
            let old = cache.store(index, Some(xa_mk_value(pfn)), Gfp::GFP_KERNEL);
            check!(matches!(old, Ok(None)), "store at {index}: {old:?}");
            if i % 3 == 0 {
                cache.set_mark(index, XA_MARK_0);
            }
            pages.push((index, page, pfn));
        }
        for &(index, _, pfn) in &pages {
            check_eq!(cache.load(index).and_then(|e| e.to_value()), Some(pfn));
        }
        check!(cache.load(5).is_none(), "index 5 was never stored");
        check_eq!(cache.iter().count(), 96);
        check_eq!(cache.iter_marked(XA_MARK_0).count(), 32);
        check!(
            cache
                .iter()
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
                .windows(2)
                .all(|w| w[0] < w[1]),
            "iteration out of order"
        );
        check!(
            cache.check().is_ok(),
            "xarray invariants: {:?}",
            cache.check()
        );
        for (index, page, pfn) in pages {
            check_eq!(cache.erase(index).and_then(|e| e.to_value()), Some(pfn));
            mm.__free_page(page);
        }
        check!(cache.is_empty());
        cache.destroy();
    }
    check_eq!(settle(mm), free0);
    Ok(())
}

/// IDR: lowest free id, reuse after remove, lookups; IDA: a bitmap of ids.
fn kds_idr_and_ida_ids(ctx: &KernelCtx) -> TestResult {
    use kds::alloc::Gfp;
    use kds::idr::{Ida, Idr};
    use kds::xarray::xa_mk_value;
    let mm = ctx.mm;
    let free0 = settle(mm);
    {
        let idr = Idr::new_in(crate::heap::KernelNodeAlloc);
        for i in 0..1000usize {
            let id = idr.idr_alloc(Some(xa_mk_value(i * 10)), 0, 0, Gfp::GFP_KERNEL);
            check_eq!(id.ok(), Some(i as i32));
        }
        check_eq!(idr.idr_remove(500).and_then(|e| e.to_value()), Some(5000));
        check_eq!(
            idr.idr_alloc(Some(xa_mk_value(1)), 0, 0, Gfp::GFP_KERNEL)
                .ok(),
            Some(500)
        );
        check_eq!(idr.idr_find(999).and_then(|e| e.to_value()), Some(9990));
        check!(idr.idr_find(1000).is_none());
        let mut n = 0;
        idr.idr_for_each(|_, _| {
            n += 1;
            0
        });
        check_eq!(n, 1000);
        idr.idr_destroy();
        check!(idr.idr_is_empty());

        let ida = Ida::new_in(crate::heap::KernelNodeAlloc);
        for want in 0..300u32 {
            check_eq!(ida.ida_alloc(Gfp::GFP_KERNEL).ok(), Some(want));
        }
        ida.ida_free(7);
        check!(!ida.ida_exists(7));
        check_eq!(ida.ida_alloc(Gfp::GFP_KERNEL).ok(), Some(7));
        check_eq!(ida.ida_alloc_min(1000, Gfp::GFP_KERNEL).ok(), Some(1000));
        ida.ida_destroy();
        check!(ida.ida_is_empty());
    }
    check_eq!(settle(mm), free0);
    Ok(())
}

/// lib/btree.c's B+tree with 128-bit keys (two words here), nodes from kmalloc, against
/// `alloc`'s BTreeMap (which itself runs on kmalloc in this kernel).
fn kds_btree_matches_btreemap(ctx: &KernelCtx) -> TestResult {
    use alloc::collections::BTreeMap;
    use core::num::NonZeroUsize;
    use kds::alloc::Gfp;
    use kds::btree::BTreeGeo128;
    use kmem::platform::Platform;
    let mm = ctx.mm;
    let plat = mm.platform();
    let free0 = settle(mm);
    {
        let mut tree: BTreeGeo128<crate::heap::KernelNodeAlloc> =
            BTreeGeo128::new_in(crate::heap::KernelNodeAlloc);
        let mut model: BTreeMap<[usize; 2], usize> = BTreeMap::new();
        for i in 1..=4000usize {
            let key = [
                (plat.random_u64() % 64) as usize,
                (plat.random_u64() % 256) as usize,
            ];
            let val = NonZeroUsize::new(i).expect("i > 0");
            if plat.random_u64().is_multiple_of(4) {
                check_eq!(tree.remove(&key).map(NonZeroUsize::get), model.remove(&key));
                continue;
            }
            let inserted = tree.insert(&key, val, Gfp::GFP_KERNEL).is_ok();
            // A present key is EEXIST and leaves the old value (the model keeps its own too).
            check_eq!(inserted, !model.contains_key(&key));
            model.entry(key).or_insert(i);
        }
        check_eq!(tree.len(), model.len());
        check!(tree.check().is_ok(), "btree invariants: {:?}", tree.check());
        check_eq!(
            tree.last().map(|(k, v)| (k, v.get())),
            model.iter().next_back().map(|(k, v)| (*k, *v))
        );
        for (k, v) in &model {
            check_eq!(tree.lookup(k).map(NonZeroUsize::get), Some(*v));
        }
        tree.destroy();
        check!(tree.is_empty());
    }
    check_eq!(settle(mm), free0);
    Ok(())
}
