//! The memory scan (mm/kmemleak.c `kmemleak_scan`, `scan_block`, `scan_gray_list`,
//! `update_checksum`, `update_refs`): see the parent module for the algorithm.
//!
//! Every block read here is tracked memory: an allocated object (its free hook waits for
//! `kmemleak_lock`, which the scan holds), the machine's state (alive as long as the
//! machine), a physical range inside lowmem (the direct map), a caller's root values
//! (which are values, not memory), or ranges the caller of the unsafe
//! [`SlabLayer::kmemleak_scan_ranges`] vouches for.

use core::ptr;

use super::object::{
    LeakState, Obj, ObjId, KMEMLEAK_BLACK, OBJECT_ALLOCATED, OBJECT_FULL_SCAN, OBJECT_NO_SCAN,
    OBJECT_PHYS, OBJECT_REPORTED,
};
use super::{Control, Inner};
use crate::addr::PhysAddr;
use crate::platform::{LogLevel, Platform};
use crate::slab::SlabLayer;

/// `BYTES_PER_POINTER`.
const BYTES_PER_POINTER: usize = core::mem::size_of::<usize>();

/// `color_white`: not enough references (a leak candidate).
pub fn white(o: &Obj) -> bool {
    o.count != KMEMLEAK_BLACK && o.count < o.min_count
}

/// `color_gray`: a root (`min_count` 0) or referenced enough.
pub fn gray(o: &Obj) -> bool {
    o.min_count != KMEMLEAK_BLACK && o.count >= o.min_count
}

/// `time_before_eq(a, b)`, wrapping like jiffies.
fn time_before_eq(a: u64, b: u64) -> bool {
    (b.wrapping_sub(a) as i64) >= 0
}

/// `unreferenced_object`: white, allocated, and created `MSECS_MIN_AGE` before the last
/// scan started (a younger object may still have its only pointer in a register).
pub fn unreferenced(o: &Obj, ctl: &Control) -> bool {
    white(o)
        && o.flags & OBJECT_ALLOCATED != 0
        && time_before_eq(o.jiffies.wrapping_add(ctl.min_age), ctl.last_scan)
}

/// `crc32(0, buf, len)` of lib/crc32.c: CRC-32 little-endian (reflected polynomial
/// 0xedb88320), seed 0, no final inversion.
pub fn crc32_le(mut crc: u32, bytes: impl Iterator<Item = u8>) -> u32 {
    for b in bytes {
        crc = CRC32_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

const CRC32_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Reads the byte at `a` of tracked memory.
pub(super) fn read_byte(a: usize) -> u8 {
    // SAFETY: `a` is inside a block the scan may read (module documentation); volatile
    // because another CPU may write it (Linux reads with KCSAN off).
    unsafe { ptr::read_volatile(a as *const u8) }
}

/// Reads the aligned word at `a` of tracked memory.
fn read_word(a: usize) -> usize {
    // SAFETY: as read_byte; `a` is pointer-aligned (scan_block).
    unsafe { ptr::read_volatile(a as *const usize) }
}

/// `update_refs`: one more reference to a white object; grey once it has `min_count`.
fn update_refs(objs: &mut LeakState, id: ObjId) {
    let o = objs.get_mut(id);
    if !white(o) {
        return;
    }
    o.count += 1;
    if gray(o) {
        objs.gray_push(id);
    }
}

/// Model → real address translation for values read by a scan (see `pointer_update_refs`).
type Xlate<'a> = &'a dyn Fn(usize) -> Option<usize>;

/// `pointer_update_refs`: `value`, read from `scanned` (or a root), as a possible pointer.
///
/// A value above every tracked object is also tried as a model address (`xlate`): on the
/// hosted platform, memory written through the shell holds the addresses people see (model
/// addresses), while kmem's own pointers are real; on bare metal the two are the same.
fn pointer_update_refs(
    objs: &mut LeakState,
    scanned: Option<ObjId>,
    value: usize,
    xlate: Xlate<'_>,
) {
    let value = if value >= objs.max_addr {
        match xlate(value) {
            Some(real) => real,
            None => return,
        }
    } else {
        value
    };
    if value < objs.min_addr || value >= objs.max_addr {
        return;
    }
    let Ok(Some(id)) = objs.lookup(value, true, false) else {
        return;
    };
    if Some(id) == scanned {
        return; // self referenced, ignore
    }
    let o = objs.get(id);
    let excess = if gray(o) { o.excess_ref } else { 0 };
    if !gray(o) {
        update_refs(objs, id);
    }
    if excess != 0 {
        let Ok(Some(x)) = objs.lookup(excess, false, false) else {
            return;
        };
        if Some(x) != scanned {
            update_refs(objs, x);
        }
    }
}

/// `scan_block`: every aligned word of `[start, end)`.
fn scan_block(
    objs: &mut LeakState,
    start: usize,
    end: usize,
    scanned: Option<ObjId>,
    xlate: Xlate<'_>,
) {
    let mut p = start.next_multiple_of(BYTES_PER_POINTER);
    while p.checked_add(BYTES_PER_POINTER).is_some_and(|e| e <= end) {
        let v = read_word(p);
        pointer_update_refs(objs, scanned, v, xlate);
        p += BYTES_PER_POINTER;
    }
}

impl<P: Platform> SlabLayer<P> {
    /// The virtual address where an object's bytes are.
    fn kmemleak_obj_start(&self, o: &Obj) -> Option<usize> {
        if o.flags & OBJECT_PHYS != 0 {
            self.phys_to_virt(PhysAddr::new(o.pointer as u64))
                .map(|v| v.as_usize())
        } else {
            Some(o.pointer)
        }
    }

    /// `scan_object`.
    fn kmemleak_scan_object(&self, objs: &mut LeakState, id: ObjId) {
        let o = objs.get(id);
        if o.flags & OBJECT_NO_SCAN != 0 || o.flags & OBJECT_ALLOCATED == 0 {
            return;
        }
        let Some(start) = self.kmemleak_obj_start(o) else {
            return;
        };
        let (start, end) = if o.area_size != 0 && o.flags & OBJECT_FULL_SCAN == 0 {
            (o.area_start, o.area_start + o.area_size)
        } else {
            (start, start + o.size)
        };
        let xlate = |v: usize| self.from_model(v as u64);
        scan_block(objs, start, end, Some(id), &xlate);
    }

    /// `scan_gray_list`.
    fn kmemleak_scan_gray_list(&self, objs: &mut LeakState) {
        while let Some(id) = objs.gray_pop() {
            self.kmemleak_scan_object(objs, id);
        }
    }

    /// `update_checksum`: true if the contents changed since the last call.
    fn kmemleak_update_checksum(&self, o: &mut Obj) -> bool {
        if o.flags & OBJECT_PHYS != 0 {
            return false;
        }
        let old = o.checksum;
        let s = o.pointer;
        o.checksum = crc32_le(0, (s..s + o.size).map(read_byte));
        o.checksum != old
    }

    /// Paints black the physical objects not entirely in lowmem (`kmemleak_scan`'s first
    /// loop): their bytes have no direct-map address to be read at.
    fn kmemleak_check_phys(&self, o: &mut Obj) {
        if o.flags & OBJECT_PHYS == 0 || o.flags & OBJECT_NO_SCAN != 0 {
            return;
        }
        let last = (o.pointer + o.size.max(1) - 1) as u64;
        if self.phys_to_virt(PhysAddr::new(o.pointer as u64)).is_none()
            || self.phys_to_virt(PhysAddr::new(last)).is_none()
        {
            o.min_count = KMEMLEAK_BLACK;
            o.flags |= OBJECT_NO_SCAN;
        }
    }

    /// `kmemleak_scan` with the lock held; `roots` are extra root values (the front end's
    /// task stacks, scanned unless `stack=off`). Returns the number of new leaks.
    pub(super) fn kmemleak_scan_locked(&self, g: &mut Inner, roots: &[usize]) -> usize {
        self.kmemleak_scan_full(g, roots, &[])
    }

    /// A scan whose roots also include the memory `ranges` (`[start, end)`: a program's
    /// data, bss and thread stacks), read like Linux's `scan_large_block`.
    ///
    /// # Safety
    /// Every range is readable memory for the whole call.
    pub unsafe fn kmemleak_scan_ranges(&self, ranges: &[(usize, usize)], roots: &[usize]) -> usize {
        if !self.leak.tracking() {
            return 0;
        }
        let mut g = self.leak.state.lock();
        self.kmemleak_scan_full(&mut g, roots, ranges)
    }

    /// The scan: `ranges` are readable (callers).
    fn kmemleak_scan_full(
        &self,
        g: &mut Inner,
        roots: &[usize],
        ranges: &[(usize, usize)],
    ) -> usize {
        g.ctl.last_scan = self.platform().jiffies();
        // The scan reads whole objects, uninitialised bytes too: no use of them.
        let _quiet = self.kmemcheck_quiet();
        let objs = &mut g.objs;

        // Prepare: whiten every object; the grey ones (roots) go on the grey list.
        let mut it = objs.first();
        while let Some(id) = it {
            let o = objs.get_mut(id);
            self.kmemleak_check_phys(o);
            o.count = 0;
            if gray(o) {
                objs.gray_push(id);
            }
            it = objs.next(id);
        }

        // The task stacks.
        let xlate = |v: usize| self.from_model(v as u64);
        if g.ctl.stack_scan {
            for &v in roots {
                pointer_update_refs(objs, None, v, &xlate);
            }
        }
        for &(s, e) in ranges {
            scan_block(objs, s, e, None, &xlate);
        }
        self.kmemleak_scan_gray_list(objs);

        // White objects modified since the previous scan are grey for this one.
        let mut it = objs.first();
        while let Some(id) = it {
            let o = objs.get_mut(id);
            if white(o) && o.flags & OBJECT_ALLOCATED != 0 && self.kmemleak_update_checksum(o) {
                o.count = o.min_count;
                objs.gray_push(id);
            }
            it = objs.next(id);
        }
        self.kmemleak_scan_gray_list(objs);

        // Report.
        let mut new_leaks = 0;
        let mut it = objs.first();
        while let Some(id) = it {
            let o = objs.get(id);
            if unreferenced(o, &g.ctl) && o.flags & OBJECT_REPORTED == 0 {
                objs.get_mut(id).flags |= OBJECT_REPORTED;
                if g.ctl.verbose {
                    let _ =
                        self.kmemleak_print_unreferenced(None, objs.get(id), &|a| self.to_model(a));
                }
                new_leaks += 1;
            }
            it = objs.next(id);
        }
        if new_leaks > 0 {
            g.ctl.found_leaks = true;
            self.printk(
                LogLevel::Info,
                format_args!(
                    "kmemleak: {new_leaks} new suspected memory leaks (see /sys/kernel/debug/kmemleak)"
                ),
            );
        }
        new_leaks
    }

    /// A memory scan (`echo scan > /sys/kernel/debug/kmemleak`), with `roots` as the task
    /// stacks (values that may be pointers: the shell's variables). Returns the number of new
    /// suspected leaks; 0 when kmemleak is off.
    pub fn kmemleak_scan(&self, roots: &[usize]) -> usize {
        if !self.leak.tracking() {
            return 0;
        }
        let mut g = self.leak.state.lock();
        self.kmemleak_scan_locked(&mut g, roots)
    }

    /// The automatic scan's timer (Linux's `kmemleak` thread, `jiffies_scan_wait`): scans if
    /// one is due. A front end calls it between commands.
    pub fn kmemleak_poll(&self, roots: &[usize]) {
        if !self.leak.tracking() {
            return;
        }
        let now = self.platform().jiffies();
        let mut g = self.leak.state.lock();
        if !g.ctl.auto_scan || !time_before_eq(g.ctl.next_scan, now) {
            return;
        }
        g.ctl.next_scan = now.wrapping_add(g.ctl.scan_wait);
        self.kmemleak_scan_locked(&mut g, roots);
    }
}
