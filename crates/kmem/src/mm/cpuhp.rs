//! CPU hotplug states (kernel/cpu.c, include/linux/cpuhotplug.h): the table of teardown
//! callbacks run when a CPU goes offline.
//!
//! A subsystem that keeps per-CPU state registers a [`CpuhpState`] at boot
//! (`cpuhp_setup_state_nocalls` in Linux); the machine's CPU-dead hook runs the registered
//! teardowns for the dead CPU from the highest state down, as `cpuhp_down_callbacks` does.
//! The memory model, at the bottom, owns the table and never calls a subsystem by name, so
//! the dependency between the layers stays one way: the page allocator and SLUB register
//! themselves, nothing below them knows they exist.
//!
//! # Invariants
//! - An entry's `ctx` is the address of the registering layer, which lives in the machine's
//!   state (memblock memory that never moves) for as long as the machine; its `teardown`
//!   expects exactly that layer type behind `ctx`.
//! - Entries are registered during boot only; the table's lock is taken just to copy the
//!   entries out, never across a callback.

/// The hotplug states kmem uses, lowest first. Teardown runs from the highest down, so a
/// state's teardown may still use every state below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum CpuhpState {
    /// `CPUHP_PAGE_ALLOC` ("mm/page_alloc:pcp", teardown `page_alloc_cpu_dead`): the dead
    /// CPU's per-CPU page lists go back to the buddy allocator.
    PageAllocDead,
    /// `CPUHP_SLUB_DEAD` ("slub:dead", teardown `slub_cpu_dead`): the dead CPU's active and
    /// partial slabs are deactivated. Above the page allocator's state: deactivating slabs
    /// frees pages, which must not land on the lists of the CPU being drained afterwards.
    SlubDead,
}

/// The number of [`CpuhpState`]s.
pub const NR_CPUHP_STATES: usize = 2;

/// A teardown callback: `ctx` is the registering layer, `cpu` the CPU going offline.
///
/// # Safety
/// Callers pass the `ctx` registered with the callback while the machine is alive, and no
/// thread uses `cpu`'s per-CPU data during the call.
pub type CpuhpTeardown = unsafe fn(ctx: *const (), cpu: usize);

/// One registered state.
#[derive(Clone, Copy)]
pub struct CpuhpEntry {
    /// The name Linux gives the state (`"slub:dead"`).
    pub name: &'static str,
    /// The registering layer (see the module invariants).
    pub ctx: *const (),
    /// Its teardown.
    pub teardown: CpuhpTeardown,
}

/// The registered states, indexed by [`CpuhpState`].
pub struct CpuhpTable {
    entries: [Option<CpuhpEntry>; NR_CPUHP_STATES],
}

// SAFETY: `ctx` pointers refer to layers of the machine's state, which is itself Send and
// Sync; the table only stores and copies them.
unsafe impl Send for CpuhpTable {}

impl CpuhpTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            entries: [None; NR_CPUHP_STATES],
        }
    }

    /// Registers `entry` for `state`; returns `false` (changing nothing) if the state is
    /// already taken, as `cpuhp_setup_state` fails with `-EBUSY`.
    pub fn register(&mut self, state: CpuhpState, entry: CpuhpEntry) -> bool {
        let slot = &mut self.entries[state as usize];
        if slot.is_some() {
            return false;
        }
        *slot = Some(entry);
        true
    }

    /// The registered entries in teardown order (highest state first).
    pub fn teardown_order(&self) -> impl Iterator<Item = (CpuhpState, CpuhpEntry)> + '_ {
        const STATES: [CpuhpState; NR_CPUHP_STATES] =
            [CpuhpState::PageAllocDead, CpuhpState::SlubDead];
        STATES
            .iter()
            .rev()
            .filter_map(|&s| self.entries[s as usize].map(|e| (s, e)))
    }
}

impl Default for CpuhpTable {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// # Safety
    /// None: it touches neither argument (a teardown with the registered signature).
    unsafe fn nop(_: *const (), _: usize) {}

    #[test]
    fn teardown_runs_highest_state_first_and_states_register_once() {
        let mut t = CpuhpTable::new();
        let e = |name| CpuhpEntry {
            name,
            ctx: core::ptr::null(),
            teardown: nop,
        };
        assert!(t.register(CpuhpState::PageAllocDead, e("mm/page_alloc:pcp")));
        assert!(t.register(CpuhpState::SlubDead, e("slub:dead")));
        assert!(!t.register(CpuhpState::SlubDead, e("again")));
        let mut names = t.teardown_order().map(|(_, e)| e.name);
        assert_eq!(names.next(), Some("slub:dead"));
        assert_eq!(names.next(), Some("mm/page_alloc:pcp"));
        assert_eq!(names.next(), None);
    }
}
