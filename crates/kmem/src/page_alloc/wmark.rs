//! Watermarks, lowmem reserves and per-CPU list sizes (mm/page_alloc.c
//! `__setup_per_zone_wmarks`, `setup_per_zone_lowmem_reserve`, `init_per_zone_wmark_min`,
//! `zone_set_pageset_high_and_batch`, `decay_pcp_high`): the per-zone tunables set at boot
//! and when `min_free_kbytes` changes, and the decay of a CPU's pcp `high`. Locking as in
//! the parent module.

#[allow(clippy::wildcard_imports)]
use super::*;

impl<P: Platform> PageAllocator<P> {
    /// `__setup_per_zone_wmarks` and `setup_per_zone_lowmem_reserve`, from
    /// `min_free_kbytes` computed as `init_per_zone_wmark_min` does.
    pub(crate) fn setup_per_zone_wmarks_and_reserves(&self) {
        let arch = self.arch();
        // nr_free_buffer_pages(): managed pages of the zones GFP_USER may use.
        let lowmem: usize = self
            .zones()
            .filter(|z| z.kind <= ZoneType::Normal)
            .map(|z| z.managed_pages())
            .sum();
        let lowmem_kb = lowmem * (PAGE_SIZE / 1024);
        let min_free_kbytes = isqrt(lowmem_kb * 16).clamp(128, 262_144);
        self.set_min_free_kbytes(min_free_kbytes);
        // sysctl_lowmem_reserve_ratio (mm/page_alloc.c): DMA 256, DMA32 256, Normal 32,
        // HighMem 0 (no reserve for higher zones), Movable 0.
        let ratio = |z: ZoneType| match z {
            ZoneType::Dma | ZoneType::Dma32 => 256,
            ZoneType::Normal => 32,
            _ => 0,
        };
        let zones = arch.zones();
        // Per node: a zone keeps back a share of its own node's higher zones.
        for nid in 0..self.nr_online_nodes() {
            for (i, &zk) in zones.iter().enumerate() {
                let zone = self.node_zone(nid, zk);
                let r = ratio(zk);
                let clear = r == 0 || zone.managed_pages() == 0;
                let mut managed = 0usize;
                for &upper in &zones[i + 1..] {
                    managed += self.node_zone(nid, upper).managed_pages();
                    let v = if clear { 0 } else { managed / r };
                    zone.lowmem_reserve[upper.index()].store(v, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sets `min_free_kbytes` and recomputes the watermarks (`__setup_per_zone_wmarks`).
    pub fn set_min_free_kbytes(&self, kbytes: usize) {
        self.min_free_kbytes.store(kbytes, Ordering::Relaxed);
        let pages_min = kbytes >> (crate::addr::PAGE_SHIFT - 10);
        let lowmem: usize = self
            .zones()
            .filter(|z| z.kind != ZoneType::HighMem && z.kind != ZoneType::Movable)
            .map(|z| z.managed_pages())
            .sum();
        for zone in self.zones() {
            let managed = zone.managed_pages();
            let tmp = (pages_min as u64 * managed as u64)
                .checked_div(lowmem as u64)
                .unwrap_or(0) as usize;
            let min = if zone.kind == ZoneType::HighMem || zone.kind == ZoneType::Movable {
                (managed / 1024).clamp(32, 128)
            } else {
                tmp
            };
            // watermark_scale_factor = 10 (of 10000).
            let step = (tmp >> 2).max(managed * 10 / 10_000);
            zone.watermark[WMARK_MIN].store(min, Ordering::Relaxed);
            zone.watermark[WMARK_LOW].store(min + step, Ordering::Relaxed);
            zone.watermark[WMARK_HIGH].store(min + 2 * step, Ordering::Relaxed);
            zone.watermark[WMARK_PROMO].store(min + 3 * step, Ordering::Relaxed);
        }
    }

    /// `zone_batchsize` / `zone_highsize` (mm/page_alloc.c) for every CPU's pcp lists.
    pub(crate) fn setup_pcp_sizes(&self) {
        let nr_cpus = self.nr_cpus().max(1);
        for zone in self.zones() {
            if zone.pcp.is_null() {
                continue;
            }
            let managed = zone.managed_pages();
            let mut batch = (managed >> 10).min((1 << 20) / PAGE_SIZE) / 4;
            if batch < 1 {
                batch = 1;
            }
            let b = batch + batch / 2;
            let batch = ((1usize << (usize::BITS - 1 - b.leading_zeros())) - 1).max(1);
            let high_min = (zone.wmark(WMARK_LOW) / nr_cpus).max(batch << 2);
            let high_max = (managed / 8 / nr_cpus).max(batch << 2);
            // SAFETY: boot-time initialisation before the machine is shared; the fields are
            // written once here.
            unsafe {
                let zp = zone as *const Zone<P::RawLock> as *mut Zone<P::RawLock>;
                (*zp).pcp_batch = batch;
                (*zp).pcp_high_min = high_min;
                (*zp).pcp_high_max = high_max;
            }
            for cpu in 0..self.possible_cpus {
                // SAFETY: boot runs alone: no CPU owns its lists yet.
                let mut p = unsafe { zone.pcp_remote(cpu, || {}) };
                // `pcp->batch` is the zone's `pcp_batch`, the same for every CPU.
                // BOOT_PAGESET_HIGH: since 6.7 `high` starts at 0 and is clamped into
                // [high_min, high_max] when the CPU first uses the lists (nr_pcp_high,
                // nr_pcp_alloc), so an unused pageset shows `high: 0` in /proc/zoneinfo.
                p.set_high(0);
            }
        }
    }

    /// `decay_pcp_high` for the current CPU (Linux runs it from the vmstat worker once a
    /// second): lowers `high` by an eighth towards `high_min` and frees what is above it.
    pub fn decay_pcp_high(&self) {
        // Lock order: cpu_section (rank 3), &zone->lock under it; docs/LOCKING.md.
        let g = self.cpu_guard();
        for z in self.zones() {
            if z.pcp.is_null() {
                continue;
            }
            // SAFETY: we hold this CPU's guard.
            let mut pcp = unsafe { z.pcp_of(g.cpu()) };
            let (count, high) = (pcp.count(), pcp.high());
            let target = count
                .saturating_sub(z.pcp_batch * 4)
                .max(high - high / 8)
                .max(z.pcp_high_min);
            if target < high {
                pcp.set_high(target);
                if count > target {
                    self.free_pcppages_bulk(z, &mut pcp, count - target);
                }
            }
        }
    }
}
