//! What a cache tells about itself: its `/proc/slabinfo` numbers, its layout and its
//! `CONFIG_SLUB_STATS` counters (the `/sys/kernel/slab/<cache>/` files).

use core::ptr;
use core::sync::atomic::Ordering;

use crate::platform::Platform;
use crate::slab::common::{CacheHandle, SlabInfo, SlabLayout, SlabStats};
use crate::slab::SlabLayer;

use super::slab::count_partial_free;
use super::{cache_ref, handle_of, walk_caches, Cache, Stat};

fn info_of<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> SlabInfo {
    // `get_slabinfo`: summed over every node.
    let (mut nr_slabs, mut nr_objs, mut nr_partial) = (0, 0, 0);
    for (_, n) in m.for_each_kmem_cache_node(s) {
        nr_slabs += n.nr_slabs.load(Ordering::Relaxed);
        nr_objs += n.total_objects.load(Ordering::Relaxed);
        nr_partial += n.nr_partial_hint.load(Ordering::Relaxed);
    }
    let free = count_partial_free(m, s);
    SlabInfo {
        active_objs: nr_objs.saturating_sub(free),
        num_objs: nr_objs,
        objsize: s.size as usize,
        object_size: s.object_size as usize,
        objperslab: s.objects,
        pagesperslab: 1 << s.order,
        num_slabs: nr_slabs,
        partial_slabs: nr_partial,
        refcount: s.refcount.load(Ordering::Relaxed),
        active_slabs: nr_slabs,
        ..SlabInfo::default()
    }
}

pub(crate) fn cache_info<P: Platform>(m: &SlabLayer<P>, h: CacheHandle) -> Option<SlabInfo> {
    let s = cache_ref::<P>(h);
    (s.gen.load(Ordering::Relaxed) == h.gen).then(|| info_of(m, s))
}

pub(crate) fn cache_name<P: Platform>(_m: &SlabLayer<P>, h: CacheHandle) -> Option<&'static str> {
    let s = cache_ref::<P>(h);
    (s.gen.load(Ordering::Relaxed) == h.gen).then(|| s.name())
}

pub(crate) fn cache_layout<P: Platform>(h: CacheHandle) -> Option<SlabLayout> {
    let s = cache_ref::<P>(h);
    (s.gen.load(Ordering::Relaxed) == h.gen).then_some(SlabLayout {
        object_size: s.object_size as usize,
        size: s.size as usize,
        offset: s.offset as usize,
        inuse: s.inuse as usize,
        red_left_pad: s.red_left_pad as usize,
        align: s.align as usize,
        order: s.order,
        objects: s.objects,
        flags: s.flags,
        min_partial: s.min_partial,
        cpu_partial_slabs: s.cpu_partial_slabs,
    })
}

pub(crate) fn cache_stats<P: Platform>(m: &SlabLayer<P>, h: CacheHandle) -> Option<SlabStats> {
    let s = cache_ref::<P>(h);
    if s.gen.load(Ordering::Relaxed) != h.gen {
        return None;
    }
    let mut st = SlabStats::default();
    for cpu in 0..m.platform().possible_cpus() {
        // SAFETY: racy reads of another CPU's counters, for statistics only; raw reads, no
        // reference is created.
        unsafe {
            let c = s.cpu_slab.add(cpu);
            st.alloc_fastpath += u64::from(ptr::read_volatile(ptr::addr_of!((*c).alloc_fast)));
            st.free_fastpath += u64::from(ptr::read_volatile(ptr::addr_of!((*c).free_fast)));
            st.alloc_pcs += u64::from(ptr::read_volatile(ptr::addr_of!((*c).alloc_pcs)));
            st.free_pcs += u64::from(ptr::read_volatile(ptr::addr_of!((*c).free_pcs)));
        }
    }
    let g = |x: Stat| s.stats[x as usize].load(Ordering::Relaxed);
    st.free_frozen = g(Stat::FreeFrozen);
    st.free_add_partial = g(Stat::FreeAddPartial);
    st.free_remove_partial = g(Stat::FreeRemovePartial);
    st.alloc_from_partial = g(Stat::AllocFromPartial);
    st.alloc_slab = g(Stat::AllocSlab);
    st.alloc_refill = g(Stat::AllocRefill);
    st.free_slab = g(Stat::FreeSlab);
    st.cpuslab_flush = g(Stat::CpuslabFlush);
    st.deactivate_full = g(Stat::DeactivateFull);
    st.deactivate_empty = g(Stat::DeactivateEmpty);
    st.deactivate_to_tail = g(Stat::DeactivateToTail);
    st.deactivate_bypass = g(Stat::DeactivateBypass);
    st.order_fallback = g(Stat::OrderFallback);
    st.cmpxchg_double_fail = g(Stat::CmpxchgDoubleFail);
    st.cpu_partial_alloc = g(Stat::CpuPartialAlloc);
    st.cpu_partial_free = g(Stat::CpuPartialFree);
    st.cpu_partial_node = g(Stat::CpuPartialNode);
    st.cpu_partial_drain = g(Stat::CpuPartialDrain);
    st.alloc_slowpath = g(Stat::AllocSlowpath);
    st.free_slowpath = g(Stat::FreeSlowpath);
    st.free_rcu_sheaf = g(Stat::FreeRcuSheaf);
    st.free_rcu_sheaf_fail = g(Stat::FreeRcuSheafFail);
    st.sheaf_flush = g(Stat::SheafFlush);
    st.sheaf_refill = g(Stat::SheafRefill);
    st.sheaf_alloc = g(Stat::SheafAlloc);
    st.sheaf_free = g(Stat::SheafFree);
    st.barn_get = g(Stat::BarnGet);
    st.barn_get_fail = g(Stat::BarnGetFail);
    st.barn_put = g(Stat::BarnPut);
    st.barn_put_fail = g(Stat::BarnPutFail);
    st.sheaf_prefill_fast = g(Stat::SheafPrefillFast);
    st.sheaf_prefill_slow = g(Stat::SheafPrefillSlow);
    st.sheaf_prefill_oversize = g(Stat::SheafPrefillOversize);
    st.sheaf_return_fast = g(Stat::SheafReturnFast);
    st.sheaf_return_slow = g(Stat::SheafReturnSlow);
    Some(st)
}

pub(crate) fn for_each_cache<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(CacheHandle, &str)) {
    walk_caches(m, &mut |s| f(handle_of(s), s.name()));
}

pub(crate) fn for_each_cache_info<P: Platform>(
    m: &SlabLayer<P>,
    f: &mut dyn FnMut(&str, &SlabInfo),
) {
    walk_caches(m, &mut |s| f(s.name(), &info_of(m, s)));
}
