//! slub_debug (mm/slub.c, `CONFIG_SLUB_DEBUG`): the reports (`slab_bug`, `slab_fix`,
//! `print_trailer`, hex dumps), the owner tracks, the object and slab checks run by the debug
//! allocation and free paths (`check_object`, `check_slab`, `on_freelist`, padding and red
//! zones), `SLAB_TRACE`, and the checks of `validate_slab_cache` (`validate_slab`) and
//! `list_slab_objects`.

use core::fmt::Write as _;
use core::panic::Location;

use crate::mm::stackdepot::DepotHandle;
use core::ptr;
use core::sync::atomic::Ordering;

use crate::addr::PAGE_SIZE;
use crate::mm::mm_types::PageType;
use crate::mm::printk::LineBuf;
use crate::platform::{LogLevel, Platform};
use crate::slab::common::{order_objects, SlabFlags, MAX_OBJS_PER_PAGE};
use crate::slab::SlabLayer;

use super::{
    Cache, Counters, KmemCache, Slab, OBJECTS_MASK, POISON_END, POISON_FREE, POISON_INUSE,
    SLUB_RED_ACTIVE, SLUB_RED_INACTIVE,
};

// ------------------------------------------------------------------ reports

/// Formats one `print_hex_dump` row: 16 bytes `xx` separated by spaces, ASCII from column 49.
fn hex_row(out: &mut LineBuf, bytes: &[u8]) {
    let mut col = 0;
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            let _ = out.write_str(" ");
            col += 1;
        }
        let _ = write!(out, "{b:02x}");
        col += 2;
    }
    while col < 49 {
        let _ = out.write_str(" ");
        col += 1;
    }
    for b in bytes {
        let c = if (0x20..0x7f).contains(b) {
            *b as char
        } else {
            '.'
        };
        let _ = out.write_char(c);
    }
}

/// `struct track`: who last allocated or freed an object, and the stack (32 bytes, as
/// Linux's on 64-bit).
#[repr(C)]
#[derive(Clone, Copy)]
struct Track {
    /// The caller's `&'static Location`.
    addr: usize,
    /// `addr ^ TRACK_MAGIC`, so a clobbered track is never dereferenced.
    check: usize,
    cpu: u32,
    pid: u32,
    /// Jiffies, low 32 bits (ages are computed modulo 2^32).
    when: u32,
    /// `handle`: the stack trace in the stack depot (0: none); validated by the depot when
    /// read, since the object's owner may have overwritten it.
    handle: u32,
}
pub(super) const TRACK_SIZE: u32 = core::mem::size_of::<Track>() as u32;
const TRACK_MAGIC: usize = 0x6b6d_656d_7472_6163;

#[derive(Clone, Copy)]
pub(super) enum TrackItem {
    Alloc = 0,
    Free = 1,
}

impl<P: Platform> SlabLayer<P> {
    /// Starts a slab `BUG` report: counts it as a bug and a slab error (`slab_bug`).
    pub(crate) fn slab_bug(&self, name: &str, args: core::fmt::Arguments<'_>) {
        self.taint.bugs.fetch_add(1, Ordering::Relaxed);
        self.slab().errors.fetch_add(1, Ordering::Relaxed);
        self.note_report();
        self.printk(
            LogLevel::Err,
            format_args!(
                "============================================================================="
            ),
        );
        self.printk(
            LogLevel::Err,
            format_args!("BUG {} ({}): {}", name, self.taint_str(), args),
        );
        self.printk(
            LogLevel::Err,
            format_args!(
                "-----------------------------------------------------------------------------"
            ),
        );
        self.printk(LogLevel::Err, format_args!(""));
    }

    /// `slab_fix`: one `FIX` line, counted as a slab error.
    pub(crate) fn slab_fix(&self, name: &str, args: core::fmt::Arguments<'_>) {
        self.slab().errors.fetch_add(1, Ordering::Relaxed);
        self.note_report();
        self.printk(LogLevel::Err, format_args!("FIX {}: {}", name, args));
    }

    #[inline]
    pub(super) fn model(&self, p: *const u8) -> u64 {
        self.to_model(p as usize)
    }

    /// `print_section`: a hex dump with addresses.
    fn print_section(&self, level: LogLevel, text: &str, addr: *const u8, len: usize) {
        let mut off = 0;
        while off < len {
            let n = (len - off).min(16);
            let mut row = [0u8; 16];
            // SAFETY: the dumped ranges lie inside a slab the caller holds (list lock or
            // ownership); plain byte reads.
            unsafe { ptr::copy_nonoverlapping(addr.add(off), row.as_mut_ptr(), n) };
            let mut line = LineBuf::new();
            let _ = write!(
                line,
                "{}{:016x}: ",
                text,
                self.model(addr.wrapping_add(off))
            );
            hex_row(&mut line, &row[..n]);
            self.printk(level, format_args!("{}", line.as_str()));
            off += n;
        }
    }

    pub(super) fn print_slab_info(&self, slab: Slab) {
        let c = slab.counters();
        let base = self.slab_base(slab);
        let fl = c.freelist(base);
        self.printk(
            LogLevel::Err,
            format_args!(
                "INFO: Slab 0x{:016x} objects={} used={} fp=0x{:016x} flags=0x{:04x}",
                self.model(slab.raw().cast()),
                slab.objects(),
                c.inuse(),
                if fl.is_null() { 0 } else { self.model(fl) },
                slab.0.flags() & 0xffff_ffff
            ),
        );
    }

    fn get_track<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        obj: *mut u8,
        t: TrackItem,
    ) -> *mut Track {
        obj.wrapping_add((s.info_end() + t as u32 * TRACK_SIZE) as usize)
            .cast()
    }

    pub(super) fn set_track<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        obj: *mut u8,
        t: TrackItem,
        caller: Option<&'static Location<'static>>,
    ) {
        let p = self.get_track(s, obj, t);
        let tr = match caller {
            Some(c) => {
                let addr = c as *const Location<'static> as usize;
                Track {
                    addr,
                    check: addr ^ TRACK_MAGIC,
                    cpu: self.platform().raw_cpu_id() as u32,
                    pid: self.platform().current_pid(),
                    when: self.platform().jiffies() as u32,
                    handle: self.stack_depot_save_current().to_raw(),
                }
            }
            None => Track {
                addr: 0,
                check: 0,
                cpu: 0,
                pid: 0,
                when: 0,
                handle: 0,
            },
        };
        // SAFETY: the track area lies inside the object's stride (calculate_sizes reserved
        // it); objects are 8-aligned, the caller owns the object.
        unsafe { ptr::write_unaligned(p, tr) };
    }

    fn print_track(&self, what: &str, t: *const Track) {
        // SAFETY: `t` is a track slot from `get_track`, which lies inside the object's stride
        // (calculate_sizes reserved it) of an object the caller is reporting on; the read is
        // unaligned-safe and copies the words out.
        let t = unsafe { ptr::read_unaligned(t) };
        if t.addr == 0 {
            return;
        }
        let age = (self.platform().jiffies() as u32).wrapping_sub(t.when);
        if t.check == t.addr ^ TRACK_MAGIC {
            // SAFETY: `addr` was stored from a `&'static Location` and the check word proves
            // it was not clobbered.
            let loc = unsafe { &*(t.addr as *const Location<'static>) };
            self.printk(
                LogLevel::Err,
                format_args!(
                    "INFO: {} in {}:{}:{} age={} cpu={} pid={}",
                    what,
                    loc.file(),
                    loc.line(),
                    loc.column(),
                    age,
                    t.cpu,
                    t.pid
                ),
            );
        } else {
            self.printk(
                LogLevel::Err,
                format_args!(
                    "INFO: {} in 0x{:x} (track corrupt) age={} cpu={} pid={}",
                    what, t.addr, age, t.cpu, t.pid
                ),
            );
        }
        // CONFIG_STACKDEPOT: stack_depot_print, or the line for a missing trace.
        if self.stack_depot().is_available() {
            let trace = self.stack_depot().fetch(DepotHandle::from_raw(t.handle));
            if trace.entries().is_empty() {
                self.printk(
                    LogLevel::Err,
                    format_args!("object allocation/free stack trace missing"),
                );
            }
            self.print_stack_trace(LogLevel::Err, &trace, 1);
        }
    }

    pub(super) fn print_tracking<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, obj: *mut u8) {
        if !s.flags.contains(SlabFlags::STORE_USER) {
            return;
        }
        self.print_track("Allocated", self.get_track(s, obj, TrackItem::Alloc));
        self.print_track("Freed", self.get_track(s, obj, TrackItem::Free));
    }

    /// `print_trailer`.
    fn print_trailer<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, slab: Slab, p: *mut u8) {
        // The free pointer and the hex dump read the object whole, uninitialised bytes too:
        // no use of them (kmemcheck with real traps would report them).
        let _quiet = self.kmemcheck_quiet();
        let base = self.slab_base(slab);
        self.print_tracking(s, p);
        self.print_slab_info(slab);
        // SAFETY: `p` is an object of the slab.
        let fp = unsafe { s.get_fp(p) };
        self.printk(
            LogLevel::Err,
            format_args!(
                "INFO: Object 0x{:016x} @offset={} fp=0x{:016x}",
                self.model(p),
                p as usize - base as usize,
                if fp.is_null() { 0 } else { self.model(fp) }
            ),
        );
        self.printk(LogLevel::Err, format_args!(""));
        if s.flags.contains(SlabFlags::RED_ZONE) {
            self.print_section(
                LogLevel::Err,
                "Redzone  ",
                p.wrapping_sub(s.red_left_pad as usize),
                s.red_left_pad as usize,
            );
        } else if p as usize > base as usize + 16 {
            self.print_section(LogLevel::Err, "Bytes b4 ", p.wrapping_sub(16), 16);
        }
        self.print_section(
            LogLevel::Err,
            "Object   ",
            p,
            (s.object_size as usize).min(PAGE_SIZE),
        );
        if s.flags.contains(SlabFlags::RED_ZONE) {
            self.print_section(
                LogLevel::Err,
                "Redzone  ",
                p.wrapping_add(s.object_size as usize),
                (s.inuse - s.object_size) as usize,
            );
        }
        let off = s.meta_end();
        if off != s.size_from_object() {
            self.print_section(
                LogLevel::Err,
                "Padding  ",
                p.wrapping_add(off as usize),
                (s.size_from_object() - off) as usize,
            );
        }
        self.dump_stack(LogLevel::Err, Location::caller());
    }

    /// `object_err`.
    pub(super) fn object_err<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        p: *mut u8,
        reason: &str,
    ) {
        self.slab_bug(s.name(), format_args!("{reason}"));
        self.print_trailer(s, slab, p);
        self.add_taint(crate::debug::TAINT_BAD_PAGE);
    }

    /// `slab_err`.
    pub(super) fn slab_err<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Option<Slab>,
        args: core::fmt::Arguments<'_>,
    ) {
        self.slab_bug(s.name(), args);
        if let Some(slab) = slab {
            self.print_slab_info(slab);
        }
        self.dump_stack(LogLevel::Err, Location::caller());
        self.add_taint(crate::debug::TAINT_BAD_PAGE);
    }

    /// `check_bytes_and_report`: checks that `[start, start + bytes)` holds `value`; reports and
    /// restores it otherwise.
    #[allow(clippy::too_many_arguments)]
    fn check_bytes_and_report<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        object: *mut u8,
        what: &str,
        start: *mut u8,
        value: u8,
        bytes: usize,
    ) -> bool {
        // SAFETY: the range lies in the object's stride inside a slab the caller holds.
        let area = unsafe { core::slice::from_raw_parts(start, bytes) };
        let Some(first) = area.iter().position(|b| *b != value) else {
            return true;
        };
        let mut end = bytes;
        while end > first && area[end - 1] == value {
            end -= 1;
        }
        let base = self.slab_base(slab);
        let fault = start.wrapping_add(first);
        self.slab_bug(s.name(), format_args!("{what} overwritten"));
        self.printk(
            LogLevel::Err,
            format_args!(
                "INFO: 0x{:016x}-0x{:016x} @offset={}. First byte 0x{:x} instead of 0x{:x}",
                self.model(fault),
                self.model(start.wrapping_add(end - 1)),
                fault as usize - base as usize,
                area[first],
                value
            ),
        );
        self.print_trailer(s, slab, object);
        self.add_taint(crate::debug::TAINT_BAD_PAGE);
        self.slab_fix(
            s.name(),
            format_args!(
                "Restoring {} 0x{:016x}-0x{:016x}=0x{:x}",
                what,
                self.model(fault),
                self.model(start.wrapping_add(end - 1)),
                value
            ),
        );
        // SAFETY: `fault..fault + (end - first)` lies inside `start..start + bytes`, the object's
        // stride in a slab the caller holds (the range read above); `area` is not used after this
        // write.
        unsafe { ptr::write_bytes(fault, value, end - first) };
        false
    }

    /// `init_object`: red zones to `val`, poison when free.
    pub(super) fn init_object<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, p: *mut u8, val: u8) {
        let mut poison_size = s.object_size as usize;
        if s.flags.contains(SlabFlags::RED_ZONE) && s.orig_size_enabled() && val == SLUB_RED_ACTIVE
        {
            // Red-zone what kmalloc gave beyond the request ("kmalloc Redzone").
            poison_size = self.get_orig_size(s, p) as usize;
        }
        // SAFETY: the object's stride belongs to the caller (allocation, free or new slab).
        unsafe {
            if s.flags.contains(SlabFlags::RED_ZONE) {
                ptr::write_bytes(p.sub(s.red_left_pad as usize), val, s.red_left_pad as usize);
            }
            if s.flags.contains(SlabFlags::OBJECT_POISON) && poison_size > 0 {
                ptr::write_bytes(p, POISON_FREE, poison_size - 1);
                *p.add(poison_size - 1) = POISON_END;
            }
            if s.flags.contains(SlabFlags::RED_ZONE) {
                ptr::write_bytes(p.add(poison_size), val, s.inuse as usize - poison_size);
            }
        }
    }

    fn orig_size_slot<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, p: *mut u8) -> *mut u32 {
        p.wrapping_add((s.info_end() + 2 * TRACK_SIZE) as usize)
            .cast()
    }

    /// `get_orig_size`: the size asked of kmalloc (the object size when not tracked).
    pub(super) fn get_orig_size<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, p: *mut u8) -> u32 {
        if !s.orig_size_enabled() {
            return s.object_size;
        }
        // SAFETY: the slot lies in the object's metadata, reserved by calculate_sizes.
        let v = unsafe { ptr::read_unaligned(self.orig_size_slot(s, p)) };
        v.min(s.object_size)
    }

    pub(super) fn set_orig_size<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        p: *mut u8,
        v: u32,
    ) {
        // SAFETY: the orig-size slot lies in the object's metadata, reserved by calculate_sizes
        // when `orig_size_enabled()`; the caller owns the object, so nobody else writes it, and the
        // write is unaligned-safe.
        unsafe { ptr::write_unaligned(self.orig_size_slot(s, p), v) };
    }

    /// `check_valid_pointer`.
    pub(super) fn check_valid_pointer<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        obj: *mut u8,
    ) -> bool {
        if obj.is_null() {
            return true;
        }
        let base = self.slab_base(slab) as usize;
        let o = (obj as usize).wrapping_sub(s.red_left_pad as usize);
        o >= base
            && o < base + slab.objects() as usize * s.size as usize
            && (o - base) / s.size as usize * s.size as usize == o - base
    }

    /// `check_pad_bytes`.
    fn check_pad_bytes<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        p: *mut u8,
    ) -> bool {
        let off = s.meta_end();
        if s.size_from_object() == off {
            return true;
        }
        self.check_bytes_and_report(
            s,
            slab,
            p,
            "Object padding",
            p.wrapping_add(off as usize),
            POISON_INUSE,
            (s.size_from_object() - off) as usize,
        )
    }

    /// `slab_pad_check`: the leftover at the end of a poisoned slab.
    pub(super) fn slab_pad_check<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
    ) -> bool {
        if !s.flags.contains(SlabFlags::POISON) {
            return true;
        }
        let start = self.slab_base(slab);
        let length = PAGE_SIZE << slab.order();
        let remainder = length % s.size as usize;
        if remainder == 0 {
            return true;
        }
        let pad = start.wrapping_add(length - remainder);
        // SAFETY: the tail of a slab held by the caller.
        let area = unsafe { core::slice::from_raw_parts(pad, remainder) };
        let Some(first) = area.iter().position(|b| *b != POISON_INUSE) else {
            return true;
        };
        let mut end = remainder;
        while end > first && area[end - 1] == POISON_INUSE {
            end -= 1;
        }
        let fault = pad.wrapping_add(first);
        self.slab_err(
            s,
            Some(slab),
            format_args!(
                "Padding overwritten. 0x{:016x}-0x{:016x} @offset={}",
                self.model(fault),
                self.model(pad.wrapping_add(end - 1)),
                fault as usize - start as usize
            ),
        );
        self.print_section(LogLevel::Err, "Padding ", pad, remainder);
        self.slab_fix(
            s.name(),
            format_args!(
                "Restoring slab padding 0x{:016x}-0x{:016x}=0x{:x}",
                self.model(fault),
                self.model(pad.wrapping_add(end - 1)),
                POISON_INUSE
            ),
        );
        // SAFETY: `fault..fault + (end - first)` lies inside the padding `pad..pad + remainder` at
        // the tail of the slab the caller holds (read above as `area`, not used after this write).
        unsafe { ptr::write_bytes(fault, POISON_INUSE, end - first) };
        false
    }

    /// `check_object`.
    pub(super) fn check_object<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        p: *mut u8,
        val: u8,
    ) -> bool {
        let endobject = p.wrapping_add(s.object_size as usize);
        let mut ok = true;
        if s.flags.contains(SlabFlags::RED_ZONE) {
            if !self.check_bytes_and_report(
                s,
                slab,
                p,
                "Left Redzone",
                p.wrapping_sub(s.red_left_pad as usize),
                val,
                s.red_left_pad as usize,
            ) {
                ok = false;
            }
            if s.orig_size_enabled() && val == SLUB_RED_ACTIVE {
                let orig = self.get_orig_size(s, p);
                if s.object_size > orig
                    && !self.check_bytes_and_report(
                        s,
                        slab,
                        p,
                        "kmalloc Redzone",
                        p.wrapping_add(orig as usize),
                        val,
                        (s.object_size - orig) as usize,
                    )
                {
                    ok = false;
                }
            }
            if !self.check_bytes_and_report(
                s,
                slab,
                p,
                "Right Redzone",
                endobject,
                val,
                (s.inuse - s.object_size) as usize,
            ) {
                ok = false;
            }
        } else if s.flags.contains(SlabFlags::POISON) && s.object_size < s.inuse {
            self.check_bytes_and_report(
                s,
                slab,
                p,
                "Alignment padding",
                endobject,
                POISON_INUSE,
                (s.inuse - s.object_size) as usize,
            );
        }
        if s.flags.contains(SlabFlags::POISON) {
            if val != SLUB_RED_ACTIVE && s.flags.contains(SlabFlags::OBJECT_POISON) {
                if !self.check_bytes_and_report(
                    s,
                    slab,
                    p,
                    "Poison",
                    p,
                    POISON_FREE,
                    s.object_size as usize - 1,
                ) {
                    ok = false;
                }
                if !self.check_bytes_and_report(
                    s,
                    slab,
                    p,
                    "End Poison",
                    p.wrapping_add(s.object_size as usize - 1),
                    POISON_END,
                    1,
                ) {
                    ok = false;
                }
            }
            self.check_pad_bytes(s, slab, p);
        }
        if !s.freeptr_outside() && val == SLUB_RED_ACTIVE {
            // The free pointer overlaps the object and cannot be checked while in use.
            return ok;
        }
        // SAFETY: `p` is an object of the slab, held by the caller.
        let fp = unsafe { s.get_fp(p) };
        if !self.check_valid_pointer(s, slab, fp) {
            self.object_err(s, slab, p, "Freepointer corrupt");
            // SAFETY: `p` is an object of `slab`, which the caller holds, so its free-pointer word
            // is inside the slab and ours to write; the chain after the corrupt pointer is lost, as
            // in Linux.
            unsafe { s.set_fp(p, ptr::null_mut()) };
            return false;
        }
        ok
    }

    /// `check_slab`.
    pub(super) fn check_slab<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, slab: Slab) -> bool {
        if slab.0.page_type() != Some(PageType::Slab) {
            self.slab_err(s, Some(slab), format_args!("Not a valid slab page"));
            return false;
        }
        let maxobj = order_objects(slab.order(), s.size).min(MAX_OBJS_PER_PAGE);
        if slab.objects() > maxobj {
            self.slab_err(
                s,
                Some(slab),
                format_args!("objects {} > max {}", slab.objects(), maxobj),
            );
            return false;
        }
        let c = slab.counters();
        if c.inuse() > slab.objects() {
            self.slab_err(
                s,
                Some(slab),
                format_args!("inuse {} > max {}", c.inuse(), slab.objects()),
            );
            return false;
        }
        self.slab_pad_check(s, slab);
        true
    }

    /// `on_freelist`: whether `search` is on the slab's freelist; repairs the freelist and the
    /// in-use count when they are wrong. Called with the list lock held on an unfrozen slab.
    pub(super) fn on_freelist<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        search: *mut u8,
    ) -> bool {
        let base = self.slab_base(slab);
        let mut nr = 0u32;
        let c = slab.counters();
        let mut fp = c.freelist(base);
        let mut object: *mut u8 = ptr::null_mut();
        while !fp.is_null() && nr <= slab.objects() {
            if fp == search {
                return true;
            }
            if !self.check_valid_pointer(s, slab, fp) {
                if !object.is_null() {
                    self.object_err(s, slab, object, "Freechain corrupt");
                    // SAFETY: `object` is a free object of the slab (on its freelist).
                    unsafe { s.set_fp(object, ptr::null_mut()) };
                } else {
                    self.slab_err(s, Some(slab), format_args!("Freepointer corrupt"));
                    self.set_counters_locked(
                        slab,
                        Counters::new(ptr::null_mut(), base, slab.objects(), c.frozen()),
                    );
                    self.slab_fix(s.name(), format_args!("Freelist cleared"));
                    return false;
                }
                break;
            }
            object = fp;
            // SAFETY: `fp` was checked to be an object of the slab.
            fp = unsafe { s.get_fp(object) };
            nr += 1;
        }
        if nr > slab.objects() {
            // More free objects than the slab has: the chain loops (a double free the naive
            // check could not see). mm/slub.c `on_freelist` gives the objects up.
            self.slab_err(s, Some(slab), format_args!("Freelist cycle detected"));
            self.set_counters_locked(
                slab,
                Counters::new(ptr::null_mut(), base, slab.objects(), c.frozen()),
            );
            self.slab_fix(s.name(), format_args!("Freelist cleared"));
            return false;
        }
        let max_objects = order_objects(slab.order(), s.size).min(MAX_OBJS_PER_PAGE);
        if slab.objects() != max_objects && slab.order() == s.order {
            self.slab_err(
                s,
                Some(slab),
                format_args!(
                    "Wrong number of objects. Found {} but should be {}",
                    slab.objects(),
                    max_objects
                ),
            );
            slab.0
                .set_private((slab.0.private() & !OBJECTS_MASK) | max_objects as usize);
            self.slab_fix(s.name(), format_args!("Number of objects adjusted."));
        }
        let c = slab.counters();
        let counted = slab.objects().saturating_sub(nr);
        if c.inuse() != counted {
            self.slab_err(
                s,
                Some(slab),
                format_args!(
                    "Wrong object count. Counter is {} but counted were {}",
                    c.inuse(),
                    counted
                ),
            );
            self.set_counters_locked(
                slab,
                Counters::new(c.freelist(base), base, counted, c.frozen()),
            );
            self.slab_fix(s.name(), format_args!("Object count adjusted."));
        }
        search.is_null()
    }

    /// Replaces a slab's counters word, retrying against concurrent pushes (list lock held).
    fn set_counters_locked(&self, slab: Slab, new: Counters) {
        slab.set_counters(new);
    }
}

impl<P: Platform> SlabLayer<P> {
    pub(super) fn trace(&self, s: &Cache<P>, slab: Slab, obj: *mut u8, alloc: bool) {
        if !s.flags.contains(SlabFlags::TRACE) {
            return;
        }
        let c = slab.counters();
        let fl = c.freelist(self.slab_base(slab));
        self.printk(
            LogLevel::Info,
            format_args!(
                "TRACE {} {} 0x{:016x} inuse={} fp=0x{:016x}",
                s.name(),
                if alloc { "alloc" } else { "free" },
                self.model(obj),
                c.inuse(),
                if fl.is_null() { 0 } else { self.model(fl) }
            ),
        );
        if !alloc {
            self.print_section(LogLevel::Info, "Object ", obj, s.object_size as usize);
        }
    }
}

pub(super) fn validate_slab<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, slab: Slab) {
    if !m.check_slab(s, slab) || !m.on_freelist(s, slab, ptr::null_mut()) {
        return;
    }
    let base = m.slab_base(slab);
    let objects = slab.objects() as usize;
    // Map of free objects (MAX_OBJS_PER_PAGE bits would be 4 KiB; walk in chunks).
    let mut map = [0u64; 64];
    let chunk = map.len() * 64;
    let mut lo = 0;
    while lo < objects {
        map.iter_mut().for_each(|w| *w = 0);
        let mut fp = slab.counters().freelist(base);
        let mut guard = 0;
        while !fp.is_null() && guard <= objects {
            let idx = (fp as usize - base as usize - s.red_left_pad as usize) / s.size as usize;
            if idx >= lo && idx < lo + chunk {
                map[(idx - lo) / 64] |= 1 << ((idx - lo) % 64);
            }
            // SAFETY: on_freelist verified the chain.
            fp = unsafe { s.get_fp(fp) };
            guard += 1;
        }
        for i in lo..objects.min(lo + chunk) {
            let p = base.wrapping_add(s.red_left_pad as usize + i * s.size as usize);
            let free = map[(i - lo) / 64] & (1 << ((i - lo) % 64)) != 0;
            let val = if free {
                SLUB_RED_INACTIVE
            } else {
                SLUB_RED_ACTIVE
            };
            if !m.check_object(s, slab, p, val) {
                return;
            }
        }
        lo += chunk;
    }
}

/// `list_slab_objects`.
pub(super) fn list_slab_objects<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, slab: Slab) {
    m.slab_err(
        s,
        Some(slab),
        format_args!(
            "Objects remaining in {} on __kmem_cache_shutdown()",
            s.name()
        ),
    );
    let base = m.slab_base(slab);
    let objects = slab.objects() as usize;
    let mut free = [false; 512];
    let mut fp = slab.counters().freelist(base);
    let mut guard = 0;
    while !fp.is_null() && guard <= objects {
        let idx = (fp as usize - base as usize - s.red_left_pad as usize) / s.size as usize;
        if idx < free.len() {
            free[idx] = true;
        }
        // SAFETY: a free object of the slab.
        fp = unsafe { s.get_fp(fp) };
        guard += 1;
    }
    for (i, f) in free.iter().enumerate().take(objects) {
        if !f {
            let p = base.wrapping_add(s.red_left_pad as usize + i * s.size as usize);
            m.printk(
                LogLevel::Err,
                format_args!(
                    "INFO: Object 0x{:016x} @offset={}",
                    m.model(p),
                    p as usize - base as usize
                ),
            );
            m.print_tracking(s, p);
        }
    }
}
