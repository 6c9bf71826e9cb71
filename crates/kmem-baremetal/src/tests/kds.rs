//! kds, the kernel data structures, used as kernel code uses them: intrusive list nodes living in
//! a page from the buddy allocator, sorted with `list_sort`; multiplicative hashing; a kfifo.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use core::mem::size_of;

use kds::list::{self, ListHead};
use kmem::platform::Platform;
use kmem::{GfpFlags, PAGE_SIZE};

use super::KernelCtx;
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![kds_list_in_a_page, kds_hash_values, kds_kfifo_ring];

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
