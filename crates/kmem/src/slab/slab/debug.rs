//! SLAB's debugging (mm/slab.c with `CONFIG_DEBUG_SLAB`): red zone words around objects
//! (`SLAB_RED_ZONE`: `RED_ACTIVE` / `RED_INACTIVE`), poisoned free objects (`SLAB_POISON`:
//! 0x6b… 0xa5, checked when handed out), the last user (`SLAB_STORE_USER`), and the reports
//! `verify_redzone_free`, `check_poison_obj` ("Slab corruption") and the double free check of
//! `slab_put_obj`.

use core::fmt::Write as _;
use core::panic::Location;
use core::ptr;
use core::sync::atomic::Ordering;

use kds::list::{self, ListHead};

use crate::mm::printk::LineBuf;
use crate::platform::{LogLevel, Platform};
use crate::slab::common::SlabFlags;
use crate::slab::SlabLayer;

use super::{
    Cache, SlabPage, POISON_END, POISON_FREE, POISON_INUSE, RED_ACTIVE, RED_INACTIVE, USER_WORDS,
};

/// Check word of the last-user slot: a clobbered slot is never followed.
const USER_MAGIC: usize = 0x736c_6162_7573_6572;

impl<P: Platform> SlabLayer<P> {
    /// `dbg_redzone1`.
    fn redzone1(&self, s: &Cache<P>, objp: *mut u8) -> *mut u64 {
        objp.wrapping_add(s.obj_offset as usize - 8).cast()
    }
    /// `dbg_redzone2`.
    fn redzone2(&self, s: &Cache<P>, objp: *mut u8) -> *mut u64 {
        let back = if s.flags.contains(SlabFlags::STORE_USER) {
            8 + USER_WORDS
        } else {
            8
        };
        objp.wrapping_add((s.size - back) as usize).cast()
    }
    /// `dbg_userword`: the caller word and its check word.
    fn userword(&self, s: &Cache<P>, objp: *mut u8) -> *mut [usize; 2] {
        objp.wrapping_add((s.size - USER_WORDS) as usize).cast()
    }
    fn rd(&self, p: *mut u64) -> u64 {
        // SAFETY: red zone words lie inside the object's stride (`__kmem_cache_create` added
        // them), which the caller may read.
        unsafe { ptr::read_unaligned(p) }
    }
    fn wr(&self, p: *mut u64, v: u64) {
        // SAFETY: red zone words lie inside the object's stride (`__kmem_cache_create` added
        // them), in slab memory; the caller owns the object, so nobody else writes the word.
        unsafe { ptr::write_unaligned(p, v) }
    }
    fn set_user(&self, s: &Cache<P>, objp: *mut u8, caller: Option<&'static Location<'static>>) {
        let a = caller.map_or(0, |c| c as *const Location<'static> as usize);
        // SAFETY: the user slot lies inside the stride; the caller owns the object.
        unsafe { ptr::write_unaligned(self.userword(s, objp), [a, a ^ USER_MAGIC]) };
    }

    /// `poison_obj`: fills the object with `val`, its last byte `POISON_END`.
    pub(super) fn poison_obj(&self, s: &Cache<P>, objp: *mut u8, val: u8) {
        let size = s.object_size.load(Ordering::Relaxed) as usize;
        let real = objp.wrapping_add(s.obj_offset as usize);
        // SAFETY: the object proper lies inside the stride; the caller owns it.
        unsafe {
            ptr::write_bytes(real, val, size);
            *real.add(size - 1) = POISON_END;
        }
    }

    /// `cache_init_objs_debug`: red zones, user words, constructor and poison of a new slab.
    pub(super) fn cache_init_objs_debug(&self, s: &Cache<P>, slab: SlabPage) {
        if !s.debug() {
            return;
        }
        for i in 0..s.num {
            let objp = self.index_to_obj(s, slab, i);
            if s.flags.contains(SlabFlags::STORE_USER) {
                self.set_user(s, objp, None);
            }
            if s.flags.contains(SlabFlags::RED_ZONE) {
                self.wr(self.redzone1(s, objp), RED_INACTIVE);
                self.wr(self.redzone2(s, objp), RED_INACTIVE);
            }
            // The constructor runs here without poisoning; with it, at allocation.
            if let Some(ctor) = s.ctor {
                if !s.flags.contains(SlabFlags::POISON) {
                    ctor(objp.wrapping_add(s.obj_offset as usize));
                    if s.flags.contains(SlabFlags::RED_ZONE) {
                        if self.rd(self.redzone2(s, objp)) != RED_INACTIVE {
                            self.slab_error(
                                s,
                                "cache_init_objs_debug",
                                "constructor overwrote the end of an object",
                            );
                        }
                        if self.rd(self.redzone1(s, objp)) != RED_INACTIVE {
                            self.slab_error(
                                s,
                                "cache_init_objs_debug",
                                "constructor overwrote the start of an object",
                            );
                        }
                    }
                }
            }
            if s.flags.contains(SlabFlags::POISON) {
                self.poison_obj(s, objp, POISON_FREE);
            }
        }
    }

    /// `__slab_error`: `slab error in <function>(): cache `<name>': <msg>` and a stack dump.
    #[track_caller]
    pub(super) fn slab_error(&self, s: &Cache<P>, function: &str, msg: &str) {
        self.slab_error_line(format_args!(
            "slab error in {}(): cache `{}': {}",
            function,
            s.name(),
            msg
        ));
        self.dump_stack(LogLevel::Err, Location::caller());
    }

    /// `verify_redzone_free`: returns false for a double free (both words inactive).
    #[track_caller]
    fn verify_redzone_free(&self, s: &Cache<P>, objp: *mut u8) -> bool {
        let r1 = self.rd(self.redzone1(s, objp));
        let r2 = self.rd(self.redzone2(s, objp));
        if r1 == RED_ACTIVE && r2 == RED_ACTIVE {
            return true;
        }
        let double = r1 == RED_INACTIVE && r2 == RED_INACTIVE;
        let msg = if double {
            "double free detected"
        } else {
            "memory outside object was overwritten"
        };
        self.slab_error(s, "verify_redzone_free", msg);
        self.printk(
            LogLevel::Err,
            format_args!(
                "{:016x}: redzone 1:0x{:x}, redzone 2:0x{:x}",
                self.to_model(objp as usize),
                r1,
                r2
            ),
        );
        !double
    }

    /// `cache_free_debugcheck` for the stride start `objp`: red zones, last user, poison.
    /// Returns false when the free must be refused (a double free).
    #[track_caller]
    pub(super) fn cache_free_debugcheck(
        &self,
        s: &Cache<P>,
        objp: *mut u8,
        caller: &'static Location<'static>,
    ) -> bool {
        if s.flags.contains(SlabFlags::RED_ZONE) {
            if !self.verify_redzone_free(s, objp) {
                return false;
            }
            self.wr(self.redzone1(s, objp), RED_INACTIVE);
            self.wr(self.redzone2(s, objp), RED_INACTIVE);
        }
        if s.flags.contains(SlabFlags::STORE_USER) {
            self.set_user(s, objp, Some(caller));
        }
        if s.flags.contains(SlabFlags::POISON) {
            self.poison_obj(s, objp, POISON_FREE);
        }
        true
    }

    /// `cache_alloc_debugcheck_after` for the stride start `objp`.
    #[track_caller]
    pub(super) fn cache_alloc_debugcheck_after(
        &self,
        s: &Cache<P>,
        objp: *mut u8,
        caller: &'static Location<'static>,
    ) {
        if s.flags.contains(SlabFlags::POISON) {
            self.check_poison_obj(s, objp);
            self.poison_obj(s, objp, POISON_INUSE);
        }
        if s.flags.contains(SlabFlags::STORE_USER) {
            self.set_user(s, objp, Some(caller));
        }
        if s.flags.contains(SlabFlags::RED_ZONE) {
            let r1 = self.rd(self.redzone1(s, objp));
            let r2 = self.rd(self.redzone2(s, objp));
            if r1 != RED_INACTIVE || r2 != RED_INACTIVE {
                self.slab_error(
                    s,
                    "cache_alloc_debugcheck_after",
                    "double free, or memory outside object was overwritten",
                );
                self.printk(
                    LogLevel::Err,
                    format_args!(
                        "{:016x}: redzone 1:0x{:x}, redzone 2:0x{:x}",
                        self.to_model(objp as usize),
                        r1,
                        r2
                    ),
                );
            }
            self.wr(self.redzone1(s, objp), RED_ACTIVE);
            self.wr(self.redzone2(s, objp), RED_ACTIVE);
        }
        if let Some(ctor) = s.ctor {
            if s.flags.contains(SlabFlags::POISON) {
                ctor(objp.wrapping_add(s.obj_offset as usize));
            }
        }
    }

    /// `dump_line`: `%03x: ` and a hex dump of `limit` bytes, plus the single-bit hint.
    fn dump_line(&self, data: *const u8, offset: usize, limit: usize) {
        let mut line = LineBuf::new();
        let _ = write!(line, "{offset:03x}: ");
        let mut bad = 0;
        let mut error = 0u8;
        let mut ascii = LineBuf::new();
        for i in 0..limit {
            // SAFETY: inside the object proper (the caller bounds `offset + limit`).
            let b = unsafe { *data.add(offset + i) };
            if b != POISON_FREE {
                error = b;
                bad += 1;
            }
            if i > 0 {
                let _ = line.write_str(" ");
            }
            let _ = write!(line, "{b:02x}");
            let _ = ascii.write_char(if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            });
        }
        for _ in limit * 3..49 {
            let _ = line.write_str(" ");
        }
        let _ = line.write_str(ascii.as_str());
        self.printk(LogLevel::Err, format_args!("{}", line.as_str()));
        if bad == 1 {
            let e = error ^ POISON_FREE;
            if e & e.wrapping_sub(1) == 0 {
                self.printk(
                    LogLevel::Err,
                    format_args!("Single bit error detected. Probably bad RAM."),
                );
                self.printk(
                    LogLevel::Err,
                    format_args!("Run memtest86+ or a similar memory test tool."),
                );
            }
        }
    }

    /// `print_objinfo`: red zones, last user and the first `lines` lines of the object.
    fn print_objinfo(&self, s: &Cache<P>, objp: *mut u8, lines: usize) {
        if s.flags.contains(SlabFlags::RED_ZONE) {
            self.printk(
                LogLevel::Err,
                format_args!(
                    "Redzone: 0x{:x}/0x{:x}",
                    self.rd(self.redzone1(s, objp)),
                    self.rd(self.redzone2(s, objp))
                ),
            );
        }
        if s.flags.contains(SlabFlags::STORE_USER) {
            // SAFETY: `userword(s, objp)` is the STORE_USER slot, which lies inside the object's
            // stride (the cache was laid out with it), and the caller holds the object while
            // checking it; the read is unaligned-safe.
            let [a, check] = unsafe { ptr::read_unaligned(self.userword(s, objp)) };
            if a != 0 && check == a ^ USER_MAGIC {
                // SAFETY: stored from a `&'static Location`; the check word proves it intact.
                let loc = unsafe { &*(a as *const Location<'static>) };
                self.printk(
                    LogLevel::Err,
                    format_args!(
                        "Last user: ({}:{}:{})",
                        loc.file(),
                        loc.line(),
                        loc.column()
                    ),
                );
            } else {
                self.printk(LogLevel::Err, format_args!("Last user: (0x{a:x})"));
            }
        }
        let real = objp.wrapping_add(s.obj_offset as usize);
        let size = s.object_size.load(Ordering::Relaxed) as usize;
        let mut i = 0;
        let mut left = lines;
        while i < size && left > 0 {
            self.dump_line(real, i, 16.min(size - i));
            i += 16;
            left -= 1;
        }
    }

    /// `check_poison_obj`: reports a free object whose poison changed ("Slab corruption"),
    /// with up to 6 damaged lines and the neighbouring objects. Returns whether it was intact.
    pub(super) fn check_poison_obj(&self, s: &Cache<P>, objp: *mut u8) -> bool {
        let real = objp.wrapping_add(s.obj_offset as usize);
        let size = s.object_size.load(Ordering::Relaxed) as usize;
        let mut lines = 0;
        let mut i = 0;
        while i < size {
            let exp = if i == size - 1 {
                POISON_END
            } else {
                POISON_FREE
            };
            // SAFETY: inside the object proper.
            if unsafe { *real.add(i) } != exp {
                if lines == 0 {
                    self.slab_error_line(format_args!(
                        "Slab corruption ({}): {} start={:016x}, len={}",
                        self.taint_str(),
                        s.name(),
                        self.to_model(real as usize),
                        size
                    ));
                    self.print_objinfo(s, objp, 0);
                }
                let row = i / 16 * 16;
                self.dump_line(real, row, 16.min(size - row));
                i = row + 16;
                lines += 1;
                if lines > 5 {
                    break;
                }
                continue;
            }
            i += 1;
        }
        if lines == 0 {
            return true;
        }
        if let Some((slab, objnr)) = self.slab_of(s, objp) {
            if objnr > 0 {
                let prev = self.index_to_obj(s, slab, objnr - 1);
                self.printk(
                    LogLevel::Err,
                    format_args!(
                        "Prev obj: start={:016x}, len={}",
                        self.to_model(prev as usize + s.obj_offset as usize),
                        size
                    ),
                );
                self.print_objinfo(s, prev, 2);
            }
            if objnr + 1 < s.num {
                let next = self.index_to_obj(s, slab, objnr + 1);
                self.printk(
                    LogLevel::Err,
                    format_args!(
                        "Next obj: start={:016x}, len={}",
                        self.to_model(next as usize + s.obj_offset as usize),
                        size
                    ),
                );
                self.print_objinfo(s, next, 2);
            }
        }
        // Repair, so the report is made once and the object can be handed out.
        self.poison_obj(s, objp, POISON_FREE);
        false
    }

    /// The object of a slab that holds an OBJFREELIST freelist (its contents are not poison).
    fn freelist_holder(&self, s: &Cache<P>, slab: SlabPage) -> *mut u8 {
        if s.objfreelist() && !slab.freelist().is_null() {
            slab.freelist()
                .cast::<u8>()
                .wrapping_sub(s.obj_offset as usize)
        } else {
            ptr::null_mut()
        }
    }

    /// Checks the free objects of a slab (`slab_destroy_debugcheck`, validation): poison and
    /// red zones. Called with the slab off every list or under the list lock.
    pub(super) fn check_free_objects(&self, s: &Cache<P>, slab: SlabPage, function: &str) {
        if !s.flags.intersects(SlabFlags::POISON | SlabFlags::RED_ZONE) {
            return;
        }
        let holder = self.freelist_holder(s, slab);
        if slab.freelist().is_null() {
            return;
        }
        for i in slab.active()..s.num {
            // SAFETY: `i < num` and the freelist is live (checked above).
            let idx = unsafe { slab.get_free_obj(i) };
            let objp = self.index_to_obj(s, slab, idx);
            if objp != holder && s.flags.contains(SlabFlags::POISON) {
                self.check_poison_obj(s, objp);
            }
            if s.flags.contains(SlabFlags::RED_ZONE) {
                if self.rd(self.redzone1(s, objp)) != RED_INACTIVE {
                    self.slab_error(s, function, "start of a freed object was overwritten");
                    self.wr(self.redzone1(s, objp), RED_INACTIVE);
                }
                if self.rd(self.redzone2(s, objp)) != RED_INACTIVE {
                    self.slab_error(s, function, "end of a freed object was overwritten");
                    self.wr(self.redzone2(s, objp), RED_INACTIVE);
                }
            }
        }
    }

    /// `slab_destroy_debugcheck`.
    pub(super) fn slab_destroy_debugcheck(&self, s: &Cache<P>, slab: SlabPage) {
        self.check_free_objects(s, slab, "slab_destroy_debugcheck");
    }
}

/// Checks the red zone words of an object that is not on its slab's freelist: allocated
/// (`RED_ACTIVE`) or waiting in a per-CPU array (`RED_INACTIVE`). Anything else is reported
/// and repaired.
fn check_used_redzone<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, objp: *mut u8) {
    let r1 = m.rd(m.redzone1(s, objp));
    let r2 = m.rd(m.redzone2(s, objp));
    let ok = |r: u64| r == RED_ACTIVE || r == RED_INACTIVE;
    if ok(r1) && ok(r2) {
        return;
    }
    m.slab_error(s, "validate", "memory outside object was overwritten");
    m.printk(
        LogLevel::Err,
        format_args!(
            "{:016x}: redzone 1:0x{:x}, redzone 2:0x{:x}",
            m.to_model(objp as usize),
            r1,
            r2
        ),
    );
    let v = if ok(r1) {
        r1
    } else if ok(r2) {
        r2
    } else {
        RED_ACTIVE
    };
    m.wr(m.redzone1(s, objp), v);
    m.wr(m.redzone2(s, objp), v);
}

/// Checks one slab on list `k` (0 full, 1 partial, 2 free) under the list lock; returns its
/// free objects.
fn validate_slab<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, slab: SlabPage, k: usize) -> usize {
    let active = slab.active();
    let ok = match k {
        0 => active == s.num,
        1 => active > 0 && active < s.num,
        _ => active == 0,
    };
    if !ok || active > s.num {
        m.slab_error_line(format_args!(
            "slab: Internal list corruption detected in cache '{}'({}), slabp {:016x}(active {}).",
            s.name(),
            s.num,
            m.to_model(slab.0.as_ptr() as usize),
            active
        ));
        return 0;
    }
    m.check_free_objects(s, slab, "validate");
    if s.flags.contains(SlabFlags::RED_ZONE) {
        let mut free = [0u64; 4];
        if !slab.freelist().is_null() {
            for i in active..s.num {
                // SAFETY: `i < num`, the freelist is live, under the list lock.
                let idx = unsafe { slab.get_free_obj(i) } as usize;
                free[idx / 64] |= 1 << (idx % 64);
            }
        }
        for idx in 0..s.num as usize {
            if free[idx / 64] & (1 << (idx % 64)) == 0 {
                check_used_redzone(m, s, m.index_to_obj(s, slab, idx as u32));
            }
        }
    }
    (s.num - active) as usize
}

/// Checks every slab of the cache: the list counters of each node and, with debugging,
/// every object (free ones' poison and red zones, used ones' red zones). The calling CPU's
/// array, the alien caches and the shared arrays are drained first, so objects freed by
/// this CPU are checked as free. Returns the number of slab errors reported.
pub(super) fn validate<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> usize {
    let before = m.slab_errors();
    super::cache::drain_local(m, s);
    for nid in 0..m.nr_online_nodes().min(crate::numa::MAX_NUMA_NODES) {
        validate_node(m, s, nid);
    }
    m.slab_errors() - before
}

/// [`validate`] of node `nid`'s lists: counters, objects, and that every slab is of `nid`.
fn validate_node<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, nid: usize) {
    // Lock order: &n->list_lock (rank 4); reports under it; docs/LOCKING.md.
    let mut n = s.node(nid).lock();
    let (mut slabs, mut free, mut free_slabs, mut foreign) = (0usize, 0usize, 0usize, 0usize);
    let heads: [*mut ListHead; 3] = [&mut n.slabs_full, &mut n.slabs_partial, &mut n.slabs_free];
    for (k, head) in heads.into_iter().enumerate() {
        // SAFETY: this node's lists under its lock; checking does not move slabs.
        for l in unsafe { list::list_for_each(head) } {
            // SAFETY: list entries are slab links.
            let slab = unsafe { SlabPage::from_lru(l) };
            slabs += 1;
            free += validate_slab(m, s, slab, k);
            free_slabs += usize::from(k == 2);
            foreign += usize::from(slab.0.nid() != nid);
        }
    }
    if slabs != n.total_slabs || free != n.free_objects || free_slabs != n.free_slabs {
        m.slab_error_line(format_args!(
            "cache {}: counted {} slabs ({} free) and {} free objects, node says {} ({}) and {}",
            s.name(),
            slabs,
            free_slabs,
            free,
            n.total_slabs,
            n.free_slabs,
            n.free_objects
        ));
    }
    if foreign != 0 {
        m.slab_error_line(format_args!(
            "cache {}: {} slabs of other nodes on node {}'s lists",
            s.name(),
            foreign,
            nid
        ));
    }
}
