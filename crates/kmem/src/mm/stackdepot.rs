//! Stack traces and the stack depot (lib/stackdepot.c, include/linux/stacktrace.h).
//!
//! A [`StackTrace`] is a fixed-size array of return addresses, innermost first, captured by
//! the platform ([`crate::platform::Platform::stack_trace`]: a frame-pointer walk or an
//! unwinder bounded by the stack's limits). The debuggers that keep a trace per object
//! (kmemleak, SLUB's alloc/free tracks, KFENCE) do not keep the array: they keep a 32-bit
//! [`DepotHandle`] from the [`StackDepot`], which stores every distinct trace once, as Linux's
//! `stack_depot_save` does, so memory is bounded by the number of distinct call paths, not of
//! objects.
//!
//! # The depot
//! One region of the platform's debug area (off the machine's books, like the lock
//! validator), cut in two:
//!
//! ```text
//!  [ buckets: DEPOT_BUCKETS × AtomicU32 (head handle of a chain) ][ arena: AtomicUsize words … ]
//!  record at word w (handle w + 1):  [ hash:32 | len:16 | check:16 ][ next handle ][ entries … ]
//! ```
//!
//! It is **lock-free**, so a trace can be saved in any context (inside `malloc`, under any
//! kmem lock, in a fault handler): a record's words are taken from the arena with one
//! `fetch_add`, written, then published by a compare-and-swap on its bucket's head (Release);
//! a lookup reads the head (Acquire) and follows `next` links. Records are never changed or
//! freed once published. Two CPUs saving the same new trace at once may both add a record
//! (the later lookups find the first one in the chain); that costs a few words, never a wrong
//! answer. When the arena is full, `save` returns [`DepotHandle::NONE`] (Linux's depot
//! returns 0 when it cannot get a pool) and the report says the stack is missing.
//!
//! A handle read back from memory a program may have clobbered (SLUB keeps them inside the
//! object's debug area) is checked before use: it must lie inside the filled part of the
//! arena and its record's check bits must match the handle, or [`StackDepot::fetch`] returns
//! an empty trace.

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::mm::MemoryModel;
use crate::platform::Platform;

/// Frames kept per trace: kmemleak's `MAX_TRACE` (mm/kmemleak.c) and SLUB's
/// `TRACK_ADDRS_COUNT` (mm/slub.c) are 16.
pub const STACK_DEPTH: usize = 16;

/// Buckets of the depot's hash table (a power of two).
pub const DEPOT_BUCKETS: usize = 1 << 14;

/// Bytes of debug area the depot asks for: the buckets and a 2 MiB arena (about 14,000
/// distinct 16-frame traces). On the hosted platform the area is lazily backed memory.
pub const DEPOT_AREA_BYTES: usize = DEPOT_BUCKETS * 4 + (2 << 20);

/// Words of a record before its entries.
const HDR_WORDS: usize = 2;

/// Return addresses of a call stack, innermost first (`unsigned long entries[]` and
/// `nr_entries` of `stack_trace_save`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StackTrace {
    entries: [usize; STACK_DEPTH],
    len: usize,
}

impl StackTrace {
    /// A trace without frames.
    pub const EMPTY: StackTrace = StackTrace {
        entries: [0; STACK_DEPTH],
        len: 0,
    };

    /// A trace of the first [`STACK_DEPTH`] addresses of `entries`.
    pub fn from_entries(entries: &[usize]) -> Self {
        let mut t = Self::EMPTY;
        let n = entries.len().min(STACK_DEPTH);
        t.entries[..n].copy_from_slice(&entries[..n]);
        t.len = n;
        t
    }

    /// The return addresses, innermost first.
    #[inline]
    pub fn entries(&self) -> &[usize] {
        &self.entries[..self.len]
    }

    /// The array to fill and the number of entries filled (for the platform's walker).
    pub(crate) fn fill(&mut self, f: impl FnOnce(&mut [usize]) -> usize) {
        self.len = f(&mut self.entries).min(STACK_DEPTH);
    }

    /// `stack_trace_hash` style hash of the entries (0 for none): the depot's key, and
    /// KFENCE's allocation-stack hash (`get_alloc_stack_hash`).
    pub fn hash(&self) -> u32 {
        hash_entries(self.entries())
    }
}

impl fmt::Debug for StackTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for e in self.entries() {
            l.entry(&format_args!("{e:#x}"));
        }
        l.finish()
    }
}

fn hash_entries(e: &[usize]) -> u32 {
    // A multiplicative mix per word (FxHash's constant), folded to 32 bits; 0 is kept for
    // "no trace".
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &w in e {
        h = (h.rotate_left(5) ^ w as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let h = (h ^ (h >> 32)) as u32;
    if e.is_empty() {
        0
    } else {
        h | 1
    }
}

/// A saved trace (`depot_stack_handle_t`): 0 is "no trace".
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct DepotHandle(u32);

impl DepotHandle {
    /// No trace (not saved, or the depot was full or absent).
    pub const NONE: DepotHandle = DepotHandle(0);

    /// Whether this is [`DepotHandle::NONE`].
    #[inline]
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The raw value, for storing in memory (SLUB's track).
    #[inline]
    pub fn to_raw(self) -> u32 {
        self.0
    }

    /// A handle from a raw value read back from memory; [`StackDepot::fetch`] validates it.
    #[inline]
    pub fn from_raw(v: u32) -> Self {
        DepotHandle(v)
    }
}

/// The check bits of a record: derived from its handle, so that a random handle almost never
/// names a record start.
fn check_bits(handle: u32) -> u64 {
    u64::from((handle.wrapping_mul(0x9e37_79b1) >> 16) as u16 ^ 0x5d3a)
}

/// The stack depot: deduplicated traces in a fixed region. See the module documentation.
pub struct StackDepot {
    buckets: *const AtomicU32,
    arena: *const AtomicUsize,
    /// Words in the arena.
    words: usize,
    /// Words of the arena handed out (may exceed `words` once full).
    top: AtomicUsize,
    /// Records published.
    records: AtomicUsize,
    /// Saves refused because the arena was full.
    dropped: AtomicUsize,
}

// SAFETY: the pointers point at the platform's debug area, valid for the platform's life
// (which outlives the machine holding the depot) and used by nothing else; every access to it
// is atomic.
unsafe impl Send for StackDepot {}
// SAFETY: as for Send: all shared access is through atomics.
unsafe impl Sync for StackDepot {}

impl StackDepot {
    /// A depot without memory: every save returns [`DepotHandle::NONE`].
    pub const fn empty() -> Self {
        Self {
            buckets: core::ptr::null(),
            arena: core::ptr::null(),
            words: 0,
            top: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// A depot in `[area, area + len)`, with its buckets cleared.
    ///
    /// # Safety
    /// `area` is valid for reads and writes of `len` bytes, 8-byte aligned, for as long as
    /// the depot is used, and used by nothing else.
    pub unsafe fn new(area: *mut u8, len: usize) -> Self {
        let bucket_bytes = DEPOT_BUCKETS * 4;
        if area.is_null() || len < bucket_bytes + 64 * 8 || !(area as usize).is_multiple_of(8) {
            return Self::empty();
        }
        let buckets = area.cast::<AtomicU32>();
        for i in 0..DEPOT_BUCKETS {
            // SAFETY: inside the area (i < DEPOT_BUCKETS, len ≥ bucket_bytes), aligned;
            // nothing else uses it yet (caller's guarantee).
            unsafe { buckets.add(i).write(AtomicU32::new(0)) };
        }
        // SAFETY: bucket_bytes < len (checked above).
        let arena = unsafe { area.add(bucket_bytes) }.cast::<AtomicUsize>();
        // Handles are u32: at most u32::MAX - 1 words.
        let words = ((len - bucket_bytes) / 8).min(u32::MAX as usize - 1);
        Self {
            buckets,
            arena,
            words,
            top: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Whether the depot has memory.
    #[inline]
    pub fn is_available(&self) -> bool {
        !self.arena.is_null()
    }

    #[inline]
    fn word(&self, i: usize) -> &AtomicUsize {
        debug_assert!(i < self.words);
        // SAFETY: i < words (callers check), so inside the arena, which lives as long as
        // `self` (new's contract).
        unsafe { &*self.arena.add(i) }
    }

    #[inline]
    fn bucket(&self, hash: u32) -> &AtomicU32 {
        let i = hash as usize & (DEPOT_BUCKETS - 1);
        // SAFETY: i < DEPOT_BUCKETS; only called when the depot has memory.
        unsafe { &*self.buckets.add(i) }
    }

    /// Finds `entries` in the chain starting at `h`.
    fn find(&self, mut h: u32, hash: u32, entries: &[usize]) -> Option<DepotHandle> {
        // A chain is at most as long as the number of records (no cycles: a record only ever
        // links to records published before it).
        while h != 0 {
            let w = h as usize - 1;
            let hdr = self.word(w).load(Ordering::Relaxed) as u64;
            if hdr as u32 == hash
                && (hdr >> 32) as u16 as usize == entries.len()
                && entries
                    .iter()
                    .enumerate()
                    .all(|(i, &e)| self.word(w + HDR_WORDS + i).load(Ordering::Relaxed) == e)
            {
                return Some(DepotHandle(h));
            }
            h = self.word(w + 1).load(Ordering::Acquire) as u32;
        }
        None
    }

    /// `stack_depot_save`: the handle of `trace`, stored once. [`DepotHandle::NONE`] for an
    /// empty trace, a depot without memory, or a full one.
    pub fn save(&self, trace: &StackTrace) -> DepotHandle {
        let entries = trace.entries();
        if entries.is_empty() || !self.is_available() {
            return DepotHandle::NONE;
        }
        let hash = trace.hash();
        let bucket = self.bucket(hash);
        let head = bucket.load(Ordering::Acquire);
        if let Some(h) = self.find(head, hash, entries) {
            return h;
        }
        let need = HDR_WORDS + entries.len();
        let w = self.top.fetch_add(need, Ordering::Relaxed);
        if w + need > self.words {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return DepotHandle::NONE;
        }
        let handle = (w + 1) as u32;
        let hdr = u64::from(hash) | ((entries.len() as u64) << 32) | (check_bits(handle) << 48);
        self.word(w).store(hdr as usize, Ordering::Relaxed);
        for (i, &e) in entries.iter().enumerate() {
            self.word(w + HDR_WORDS + i).store(e, Ordering::Relaxed);
        }
        let mut old = head;
        loop {
            self.word(w + 1).store(old as usize, Ordering::Relaxed);
            match bucket.compare_exchange_weak(old, handle, Ordering::Release, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        self.records.fetch_add(1, Ordering::Relaxed);
        DepotHandle(handle)
    }

    /// `stack_depot_fetch`: the trace saved under `h`; empty for [`DepotHandle::NONE`] or a
    /// handle that names no record (a clobbered one).
    pub fn fetch(&self, h: DepotHandle) -> StackTrace {
        let mut t = StackTrace::EMPTY;
        if h.0 == 0 || !self.is_available() {
            return t;
        }
        let w = h.0 as usize - 1;
        let filled = self.top.load(Ordering::Acquire).min(self.words);
        if w + HDR_WORDS > filled {
            return t;
        }
        let hdr = self.word(w).load(Ordering::Acquire) as u64;
        let len = (hdr >> 32) as u16 as usize;
        if hdr >> 48 != check_bits(h.0)
            || len == 0
            || len > STACK_DEPTH
            || w + HDR_WORDS + len > filled
        {
            return t;
        }
        t.fill(|out| {
            for (i, o) in out[..len].iter_mut().enumerate() {
                *o = self.word(w + HDR_WORDS + i).load(Ordering::Relaxed);
            }
            len
        });
        t
    }

    /// Records stored, arena bytes used, and saves refused because the depot was full.
    pub fn stats(&self) -> (usize, usize, usize) {
        (
            self.records.load(Ordering::Relaxed),
            self.top.load(Ordering::Relaxed).min(self.words) * 8,
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

impl<P: Platform> MemoryModel<P> {
    /// `stack_trace_save`: the current call stack through the platform's walker (empty when
    /// the platform has none).
    #[inline(never)]
    pub fn stack_trace_save(&self) -> StackTrace {
        let mut t = StackTrace::EMPTY;
        // An address in this function's frame: the walk starts at our caller.
        let frame = core::hint::black_box(&t as *const StackTrace as usize);
        t.fill(|out| self.plat.stack_trace(out, frame));
        t
    }

    /// The machine's stack depot.
    #[inline]
    pub fn stack_depot(&self) -> &StackDepot {
        &self.depot
    }

    /// Captures the current call stack and saves it in the depot (`stack_depot_save(entries,
    /// stack_trace_save(...))`); [`DepotHandle::NONE`] when there is no walker or depot.
    pub fn stack_depot_save_current(&self) -> DepotHandle {
        if !self.depot.is_available() {
            return DepotHandle::NONE;
        }
        self.depot.save(&self.stack_trace_save())
    }

    /// `%pS` of a code address: `name+0xoff/0xsize` where the platform knows the symbol, the
    /// address in hex otherwise.
    pub fn sym(&self, addr: usize) -> Sym<'_, P> {
        Sym(&self.plat, addr)
    }
}

/// `%pS` of a code address; see [`MemoryModel::sym`].
pub struct Sym<'a, P: Platform>(&'a P, usize);

impl<P: Platform> fmt::Display for Sym<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.symbolize(self.1, f) {
            Ok(())
        } else {
            write!(f, "0x{:x}", self.1)
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn depot(bytes: usize) -> (std::vec::Vec<u64>, StackDepot) {
        let mut mem = std::vec![0u64; bytes / 8];
        // SAFETY: the vector is 8-aligned, `bytes` long and outlives the depot in each test
        // (returned together; its heap buffer does not move).
        let d = unsafe { StackDepot::new(mem.as_mut_ptr().cast(), bytes) };
        (mem, d)
    }

    #[test]
    fn saves_once_and_fetches_back() {
        let (_m, d) = depot(DEPOT_BUCKETS * 4 + 4096);
        let a = StackTrace::from_entries(&[1, 2, 3]);
        let b = StackTrace::from_entries(&[1, 2, 4]);
        let ha = d.save(&a);
        let hb = d.save(&b);
        assert!(!ha.is_none() && !hb.is_none());
        assert_ne!(ha, hb);
        assert_eq!(d.save(&a), ha);
        assert_eq!(d.fetch(ha), a);
        assert_eq!(d.fetch(hb), b);
        assert_eq!(d.stats().0, 2);
        assert!(d.save(&StackTrace::EMPTY).is_none());
    }

    #[test]
    fn clobbered_handles_fetch_nothing() {
        let (_m, d) = depot(DEPOT_BUCKETS * 4 + 4096);
        let h = d.save(&StackTrace::from_entries(&[7; 16]));
        for raw in [h.to_raw() + 1, h.to_raw() + 2, 10_000, u32::MAX] {
            assert_eq!(
                d.fetch(DepotHandle::from_raw(raw)).entries(),
                &[] as &[usize]
            );
        }
    }

    #[test]
    fn full_depot_refuses_and_counts() {
        let (_m, d) = depot(DEPOT_BUCKETS * 4 + 64 * 8);
        let mut saved = 0;
        for i in 0..10 {
            if !d.save(&StackTrace::from_entries(&[i; 16])).is_none() {
                saved += 1;
            }
        }
        // 64 words hold three 18-word records.
        assert_eq!(saved, 3);
        assert_eq!(d.stats().2, 7);
        assert!(StackDepot::empty()
            .save(&StackTrace::from_entries(&[1]))
            .is_none());
    }

    #[test]
    fn concurrent_saves_agree() {
        let (_m, d) = depot(DEPOT_BUCKETS * 4 + (1 << 20));
        let d = &d;
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(move || {
                    for i in 0..500usize {
                        let t = StackTrace::from_entries(&[i, i * 3, 5]);
                        let h = d.save(&t);
                        assert_eq!(d.fetch(h), t);
                    }
                });
            }
        });
    }
}
