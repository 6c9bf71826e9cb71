//! [`HookCell`]: a platform's CPU-dead hook, as the platform sets it and exiting threads run
//! it (`cpu::cpu_thread_exit`), and the close that ends its calls when the platform drops.

use kmem::platform::CpuDeadHook;

use crate::futex::{FutexMutex, RawFutexMutex};

/// A platform's CPU-dead hook and whether the platform is still accepting calls.
pub(crate) struct HookCell {
    state: FutexMutex<HookState>,
}

struct HookState {
    hook: Option<CpuDeadHook>,
    closed: bool,
}

impl HookCell {
    pub(crate) const fn new() -> Self {
        Self {
            state: FutexMutex::const_new(
                RawFutexMutex::new(),
                HookState {
                    hook: None,
                    closed: false,
                },
            ),
        }
    }

    /// Stores the hook (replacing an earlier one) unless the cell was closed.
    pub(crate) fn set(&self, hook: CpuDeadHook) {
        let mut g = self.state.lock();
        if !g.closed {
            g.hook = Some(hook);
        }
    }

    /// Forgets the hook for good; waits for a call in progress to return.
    pub(crate) fn close(&self) {
        let mut g = self.state.lock();
        g.closed = true;
        g.hook = None;
    }

    /// Runs the hook, if any, for `cpu` going offline.
    ///
    /// # Safety
    /// `cpu` is the exclusive CPU slot of the calling thread, which is exiting: its thread
    /// state is already marked dead (so its own sections, the hook's included, use
    /// `SHARED_CPU`), and the slot stays taken in `cpu`'s `SLOTS` bitmap (so it is handed to
    /// no other thread) until this returns. `cpu::cpu_thread_exit` is the caller.
    pub(crate) unsafe fn cpu_dead(&self, cpu: usize) {
        let g = self.state.lock();
        if let Some(h) = g.hook {
            // SAFETY: the hook's contract (kmem::platform::CpuDeadHook::func): the platform it
            // was registered on has not begun dropping (`close` would have removed the hook and
            // waits for us on the lock); by this function's contract `cpu` is the exiting
            // thread's exclusive slot, used by no thread and not handed out before we return.
            unsafe { (h.func)(h.ctx, cpu) };
        }
    }
}
