//! Read-copy update (kernel/rcu/tree.c, include/linux/rcupdate.h): the grace-period core, and
//! the interface through which kds's lock-free structures use an RCU implemented elsewhere.
//!
//! `kds` sits below the memory allocator, so it has no CPUs, no clock and no threads of its
//! own. It provides two things:
//!
//! - [`RcuDomain`], the small interface a structure such as the XArray needs: a read-side
//!   section (`rcu_read_lock`/`rcu_read_unlock`) and the polled grace-period API
//!   (`start_poll_synchronize_rcu`/`poll_state_synchronize_rcu`) with which it frees unlinked
//!   nodes once every reader that could hold them has left. `kmem` implements it per machine
//!   (its CPUs' quiescent states drive the grace periods); a structure whose allocator offers
//!   no domain ([`crate::alloc::NodeAlloc::rcu`] returns `None`) falls back to its own reader
//!   count (see the `xarray` module documentation).
//! - The grace-period machinery itself, [`RcuGp`] over one [`RcuCpu`] per CPU, which kmem
//!   embeds and `tests/rcu_loom.rs` model-checks.
//!
//! # Model: non-preemptible RCU
//! A read-side section runs on one CPU with preemption off (kmem enters a CPU section), so
//! while a reader is inside, its CPU's [`RcuCpu`] belongs to it alone. A CPU is in a
//! *quiescent state* whenever no read-side section is open on it; the end of its outermost
//! section (and a CPU going offline, which can only happen outside a section) is the
//! quiescent state a grace period waits for. A grace period that starts at time `t` ends once
//! every CPU that was inside a section at `t` has left that section: then every reader that
//! could have seen something unlinked before `t` is gone.
//!
//! # The counters
//! Each CPU's `ctr` holds, in its low 32 bits, the nesting depth of read-side sections open on
//! it and, in its high 32 bits, the number of outermost sections it has ended (wrapping). Only
//! the CPU's owner changes it; the grace-period driver reads it with read-modify-writes of 0.
//! The grace-period number `seq` is Linux's `rcu_seq`: the low two bits are the state (0 idle,
//! 1 a grace period in progress), the rest counts grace periods; a cookie is
//! `rcu_seq_snap` — the value `seq` will have once a grace period that starts after the
//! snapshot has ended — and it is done when `seq >= cookie` (`rcu_seq_done`).
//!
//! # Memory ordering (why a reader cannot see a freed object)
//! An updater unlinks an object, then takes a cookie with an `AcqRel` read-modify-write of
//! `seq` and publishes its need with an `AcqRel` `fetch_max` on `need`. The driver starts a
//! grace period with an `AcqRel` RMW of `seq` and then reads every CPU's `ctr` with an `AcqRel`
//! RMW. A reader enters with an `Acquire` RMW of its `ctr`. Both sides' RMWs on one `ctr` are
//! ordered in its modification order: if the reader's comes first, the driver sees the open
//! section and waits for it; if the driver's comes first, the reader's RMW reads from it and
//! synchronises with it, so the unlink (which happens before the driver's scan through `seq`
//! or `need`) happens before everything the reader then loads: it cannot find the object.
//! A reader leaves with a `Release` RMW; the driver reads the new value with `Acquire`, and
//! ends the grace period with a `Release` store of `seq` that the updater's `Acquire` load in
//! [`RcuGp::poll_state`] reads: the reader's accesses happen before the free. The same
//! argument is the one the XArray's reader count relies on, with the count split per CPU.
//!
//! # Locking
//! The driver is serialised by `busy`, a try-lock that never waits: a caller that finds it
//! taken returns at once (the holder makes the progress). Nothing is called under it; it is
//! innermost of all (docs/LOCKING.md, kds section).

use crate::sync::{AtomicBool, AtomicU64, Ordering::*};

/// The low bits of a grace-period number that hold its state (`RCU_SEQ_STATE_MASK`).
pub const RCU_SEQ_STATE_MASK: u64 = 3;
/// The nesting part of [`RcuCpu`]'s counter.
const NEST_MASK: u64 = 0xffff_ffff;
/// One outermost section ended.
const EXIT_ONE: u64 = 1 << 32;
/// `RcuCpu::snap` of a CPU that owes the current grace period nothing.
const QS_DONE: u64 = 0;

/// A grace-period cookie (`get_state_synchronize_rcu`): the grace-period number after which
/// everything unlinked before the cookie was taken may be freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RcuCookie(pub u64);

/// An RCU implementation a kds structure can use: a read-side section and polled grace
/// periods. See the [module documentation](self).
///
/// # Safety
/// Implementors guarantee the RCU property: once [`RcuDomain::poll`] has returned `true` for
/// a cookie returned by [`RcuDomain::start_poll`], every read-side section that was open when
/// `start_poll` was called has ended, and everything it did happens-before the `poll` that
/// returned `true`. A section must also synchronise with unlinks made before it began (the
/// ordering of the module documentation).
pub unsafe trait RcuDomain: Sync {
    /// `rcu_read_lock`: enters a read-side section on the current CPU and returns a token for
    /// [`RcuDomain::read_unlock`]. Sections nest.
    fn read_lock(&self) -> usize;

    /// `rcu_read_unlock`: leaves the section `read_lock` returned `token` for.
    ///
    /// # Safety
    /// `token` came from `read_lock` on this domain, on this thread, and sections are left in
    /// the reverse order of entering; each token is used once.
    unsafe fn read_unlock(&self, token: usize);

    /// `start_poll_synchronize_rcu`: returns a cookie for a grace period that starts after
    /// this call and makes sure one will be started.
    fn start_poll(&self) -> RcuCookie;

    /// `poll_state_synchronize_rcu`: returns true if the grace period of `cookie` has ended.
    /// May advance grace-period processing; never waits.
    fn poll(&self, cookie: RcuCookie) -> bool;
}

/// One CPU's read-side state (a field of Linux's `struct rcu_data`).
#[derive(Debug)]
pub struct RcuCpu {
    /// Nesting depth (low 32 bits) and ended outermost sections (high 32 bits).
    ctr: AtomicU64,
    /// The driver's snapshot of `ctr` at the start of the current grace period, or
    /// `QS_DONE` once this CPU has passed a quiescent state since then. Driver only.
    snap: AtomicU64,
}

impl Default for RcuCpu {
    fn default() -> Self {
        Self::new()
    }
}

impl RcuCpu {
    crate::sync::const_fn_unless_loom! {
        /// Returns the state of a CPU outside any read-side section.
        pub fn new() -> Self {
            RcuCpu {
                ctr: AtomicU64::new(0),
                snap: AtomicU64::new(QS_DONE),
            }
        }
    }

    /// Enters a read-side section on this CPU (`__rcu_read_lock`).
    ///
    /// The caller must have exclusive use of the CPU (a CPU section) until the matching
    /// [`RcuCpu::read_unlock`]; otherwise grace periods may end early. Safe to call: a
    /// violation breaks the RCU guarantee of whoever relies on it, which is why the users
    /// ([`RcuDomain`] implementors) are unsafe to implement.
    #[inline]
    pub fn read_lock(&self) {
        // The Acquire RMW: see "Memory ordering" in the module documentation.
        let old = self.ctr.fetch_add(1, Acquire);
        debug_assert!(
            old & NEST_MASK < NEST_MASK,
            "RCU read-side nesting overflow"
        );
    }

    /// Leaves a read-side section; returns true if it was the outermost one (a quiescent
    /// state for this CPU).
    #[inline]
    pub fn read_unlock(&self) -> bool {
        let cur = self.ctr.load(Relaxed);
        debug_assert!(
            cur & NEST_MASK != 0,
            "rcu_read_unlock without rcu_read_lock"
        );
        if cur & NEST_MASK == 1 {
            // Depth to 0 and one more ended section, in one Release RMW.
            self.ctr.fetch_add(EXIT_ONE - 1, Release);
            true
        } else {
            self.ctr.fetch_sub(1, Release);
            false
        }
    }

    /// The nesting depth of read-side sections open on this CPU (`rcu_preempt_depth`-like).
    pub fn depth(&self) -> u32 {
        (self.ctr.load(Relaxed) & NEST_MASK) as u32
    }
}

/// Grace-period state (Linux's `rcu_state.gp_seq` and the driver that advances it).
#[derive(Debug)]
pub struct RcuGp {
    /// `rcu_state.gp_seq`.
    seq: AtomicU64,
    /// The highest cookie anyone waits for (`rcu_state.gp_seq_needed`).
    need: AtomicU64,
    /// The driver's try-lock.
    busy: AtomicBool,
}

impl Default for RcuGp {
    fn default() -> Self {
        Self::new()
    }
}

impl RcuGp {
    crate::sync::const_fn_unless_loom! {
        /// Returns the state before the first grace period.
        pub fn new() -> Self {
            RcuGp {
                seq: AtomicU64::new(0),
                need: AtomicU64::new(0),
                busy: AtomicBool::new(false),
            }
        }
    }

    /// The current grace-period number (`rcu_state.gp_seq`).
    pub fn gp_seq(&self) -> u64 {
        self.seq.load(Acquire)
    }

    /// Completed grace periods.
    pub fn completed(&self) -> u64 {
        self.gp_seq() >> 2
    }

    /// Whether a grace period is in progress.
    pub fn in_progress(&self) -> bool {
        self.gp_seq() & RCU_SEQ_STATE_MASK != 0
    }

    /// `get_state_synchronize_rcu`: a cookie for a grace period that starts after this call.
    /// Nothing is started: see [`RcuGp::start_poll`].
    pub fn snap(&self) -> RcuCookie {
        // An RMW reads the latest `seq`: a grace period whose start precedes it in `seq`'s
        // modification order is seen as in progress (and not counted), one that follows it
        // reads from it, so the caller's unlinks happen before that grace period's scan.
        let s = self.seq.fetch_add(0, AcqRel);
        RcuCookie((s + 2 * RCU_SEQ_STATE_MASK + 1) & !RCU_SEQ_STATE_MASK)
    }

    /// `start_poll_synchronize_rcu`: [`RcuGp::snap`], and the grace period is requested;
    /// the next [`RcuGp::drive`] starts it.
    pub fn start_poll(&self) -> RcuCookie {
        let c = self.snap();
        self.need.fetch_max(c.0, AcqRel);
        c
    }

    /// `poll_state_synchronize_rcu` without driving: true if `cookie`'s grace period ended.
    pub fn poll_state(&self, cookie: RcuCookie) -> bool {
        self.seq.load(Acquire) >= cookie.0
    }

    /// Advances grace-period processing as far as the CPUs' quiescent states allow: ends the
    /// grace period in progress if every CPU it waits for has passed a quiescent state, and
    /// starts the next one if a cookie asks for it. Never waits: if another caller is driving,
    /// returns at once. Returns true if a grace period ended during the call.
    ///
    /// `cpus` must be the same slice (one entry per possible CPU) on every call.
    pub fn drive(&self, cpus: &[RcuCpu]) -> bool {
        if self
            .busy
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_err()
        {
            return false;
        }
        let mut ended = false;
        loop {
            let s = self.seq.load(Relaxed);
            if s & RCU_SEQ_STATE_MASK == 0 {
                if self.need.load(Acquire) <= s {
                    break;
                }
                self.start(cpus);
                continue;
            }
            if !Self::all_quiescent(cpus) {
                break;
            }
            // rcu_seq_end: the Release store the pollers' Acquire loads read.
            self.seq.store((s | RCU_SEQ_STATE_MASK) + 1, Release);
            ended = true;
        }
        self.busy.store(false, Release);
        ended
    }

    /// `rcu_gp_init`: a new grace period, waiting for every CPU inside a section now.
    fn start(&self, cpus: &[RcuCpu]) {
        self.seq.fetch_add(1, AcqRel);
        for c in cpus {
            // An RMW of 0: see "Memory ordering".
            let v = c.ctr.fetch_add(0, AcqRel);
            let snap = if v & NEST_MASK != 0 { v } else { QS_DONE };
            c.snap.store(snap, Relaxed);
        }
    }

    /// `rcu_gp_fqs` + `rcu_report_qs_rnp`: marks the CPUs that passed a quiescent state since
    /// the start; true if none is left.
    fn all_quiescent(cpus: &[RcuCpu]) -> bool {
        let mut all = true;
        for c in cpus {
            let snap = c.snap.load(Relaxed);
            if snap == QS_DONE {
                continue;
            }
            let v = c.ctr.load(Acquire);
            // Out of every section, or the section open at the start has ended since (the
            // count of ended sections moved; it wraps only after 2^32 sections between two
            // scans).
            if v & NEST_MASK == 0 || (v ^ snap) & !NEST_MASK != 0 {
                c.snap.store(QS_DONE, Relaxed);
            } else {
                all = false;
            }
        }
        all
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn grace_period_waits_for_pre_existing_readers_only() {
        let cpus = [RcuCpu::new(), RcuCpu::new(), RcuCpu::new()];
        let gp = RcuGp::new();
        cpus[0].read_lock();
        cpus[1].read_lock();
        cpus[1].read_lock(); // nested
        let c = gp.start_poll();
        assert_eq!(c, RcuCookie(4));
        assert!(!gp.drive(&cpus));
        assert!(gp.in_progress());
        // A reader that begins after the start is not waited for.
        cpus[2].read_lock();
        assert!(cpus[0].read_unlock());
        assert!(!gp.drive(&cpus));
        assert!(!cpus[1].read_unlock());
        assert!(!gp.drive(&cpus), "the outer section on CPU 1 is still open");
        assert!(cpus[1].read_unlock());
        assert!(gp.drive(&cpus));
        assert!(gp.poll_state(c));
        assert_eq!(gp.completed(), 1);
        assert!(cpus[2].read_unlock());
    }

    #[test]
    fn cookie_taken_during_a_grace_period_needs_the_next_one() {
        let cpus = [RcuCpu::new()];
        let gp = RcuGp::new();
        cpus[0].read_lock();
        let c1 = gp.start_poll();
        gp.drive(&cpus);
        let c2 = gp.start_poll();
        assert_eq!(c2, RcuCookie(8));
        assert!(cpus[0].read_unlock());
        assert!(gp.drive(&cpus), "both grace periods end: no reader left");
        assert!(gp.poll_state(c1) && gp.poll_state(c2));
        assert_eq!(gp.completed(), 2);
        // Idle with nothing requested: driving does nothing.
        assert!(!gp.drive(&cpus));
        assert_eq!(gp.completed(), 2);
    }

    /// Model test: random sequences of section entries and exits on four CPUs, cookies and
    /// drives, against an oracle that knows which reader instances were open when each cookie
    /// was taken. Safety: a cookie reported done implies every such reader has ended.
    /// Liveness: with no reader open, one drive ends every grace period asked for.
    #[test]
    fn random_operations_against_an_oracle() {
        const CPUS: usize = 4;
        for seed in 1..=200u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut rnd = move |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let cpus: [RcuCpu; CPUS] = core::array::from_fn(|_| RcuCpu::new());
            let gp = RcuGp::new();
            // Per CPU: the stack of open reader instances (ids).
            let mut open: [[u64; 8]; CPUS] = [[0; 8]; CPUS];
            let mut depth = [0usize; CPUS];
            let mut ended = [false; 4096];
            let mut next_id = 1u64;
            // (cookie, the reader ids open when it was taken)
            let mut cookies: [(RcuCookie, [u64; CPUS * 8], usize); 64] =
                [(RcuCookie(0), [0; CPUS * 8], 0); 64];
            let mut nc = 0;
            for _ in 0..400 {
                let c = rnd(CPUS as u64) as usize;
                match rnd(5) {
                    0 | 1 if depth[c] < 8 && next_id < 4096 => {
                        cpus[c].read_lock();
                        open[c][depth[c]] = next_id;
                        depth[c] += 1;
                        next_id += 1;
                    }
                    2 if depth[c] > 0 => {
                        depth[c] -= 1;
                        ended[open[c][depth[c]] as usize] = true;
                        cpus[c].read_unlock();
                    }
                    3 if nc < 64 => {
                        let mut ids = [0; CPUS * 8];
                        let mut n = 0;
                        for (cpu, d) in depth.iter().enumerate() {
                            for &id in &open[cpu][..*d] {
                                ids[n] = id;
                                n += 1;
                            }
                        }
                        cookies[nc] = (gp.start_poll(), ids, n);
                        nc += 1;
                    }
                    _ => {
                        gp.drive(&cpus);
                    }
                }
                for (cookie, ids, n) in &cookies[..nc] {
                    if gp.poll_state(*cookie) {
                        for id in &ids[..*n] {
                            assert!(ended[*id as usize], "seed {seed}: reader {id} outlived");
                        }
                    }
                }
            }
            // Liveness: close everything, then one drive ends every requested grace period.
            for c in 0..CPUS {
                while depth[c] > 0 {
                    depth[c] -= 1;
                    cpus[c].read_unlock();
                }
            }
            gp.drive(&cpus);
            for (cookie, _, _) in &cookies[..nc] {
                assert!(
                    gp.poll_state(*cookie),
                    "seed {seed}: grace period never ended"
                );
            }
        }
    }

    #[test]
    fn re_entered_section_counts_as_quiescent() {
        let cpus = [RcuCpu::new()];
        let gp = RcuGp::new();
        cpus[0].read_lock();
        let c = gp.start_poll();
        gp.drive(&cpus);
        assert!(cpus[0].read_unlock());
        cpus[0].read_lock();
        assert!(gp.drive(&cpus), "the section open at the start ended");
        assert!(gp.poll_state(c));
        assert_eq!(cpus[0].depth(), 1);
        cpus[0].read_unlock();
    }
}
