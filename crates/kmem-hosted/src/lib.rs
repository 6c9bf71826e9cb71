//! # kmem on Linux userspace
//!
//! [`HostedPlatform`] implements [`kmem::platform::Platform`] with real host resources:
//!
//! - **Physical memory** is a memfd of `phys_size` bytes, sparse (untouched pages cost nothing),
//!   mapped whole with `MAP_SHARED` as the **direct map**: page contents are real memory. A
//!   NUMA machine's nodes each get a memfd of their own, mapped at their physical ranges of
//!   the same direct map ([`HostedPlatform::set_numa_memblks`]).
//!   The direct map sits at the start of a larger PROT_NONE reservation so that physical memory
//!   can grow in place ([`HostedPlatform::grow_phys`], memory hotplug); the host memory behind a
//!   free range can be given back ([`HostedPlatform::punch_hole`], free page reporting); the same
//!   pages can be mapped again at other addresses in a [`VirtWindow`] (vmalloc).
//! - **CPUs** are threads: each thread that enters a CPU section gets a process-wide unique CPU
//!   id, and exclusive use of it, for its lifetime; a thread's exit takes its CPU offline and
//!   runs the machine's [`kmem::platform::CpuDeadHook`] (see [`cpu`]).
//! - **Locks** are futex mutexes that never allocate ([`futex::RawFutexMutex`]); the **clock** is `CLOCK_MONOTONIC` in
//!   milliseconds (HZ = 1000) or a manual clock ([`Clock`]); **randomness** is SplitMix64 from a
//!   seed; the **console** is a file descriptor or an in-memory capture ([`Console`]).
//!
//! ```text
//!  kmem::Machine<HostedPlatform>
//!        │ direct_map_base()/phys_end()   cpu_get()/cpu_put()     console_write()
//!        ▼                                ▼                       ▼
//!  physmem: memfd + mmap            cpu: slot bitmap,         console: write(2) /
//!  (+ windows, grow, holes)         thread-locals, hooks      capture
//! ```
//!
//! ## No allocation on the hot paths
//! The platform will also sit under `#[global_allocator]` (`KmemAlloc`) and an `LD_PRELOAD`
//! malloc, so it must not re-enter the global allocator where kmem may be running:
//! - construction allocates only mappings (the control block lives in its own `mmap`, see
//!   `maparc`), never through the global allocator;
//! - `cpu_get`/`cpu_put` use a zero-initialised thread-local without drop glue and fixed
//!   arrays; registering a thread for hot-unplug clones a weak reference and sets a pthread
//!   key (whose destructor is the thread-exit handler); none of it allocates, not even in
//!   glibc (a Rust thread-local destructor would make glibc `calloc`);
//! - the locks taken on those paths ([`futex::RawFutexMutex`]) never allocate, unlike
//!   `parking_lot`, whose parking table is allocated on first contention;
//! - console output to a file descriptor is one `write(2)`; only [`Console::Capture`]
//!   allocates (it appends to a `String`), so it is for tests.
//!
//! `tests/no_alloc.rs` checks all of this, and that booting a `kmem::Machine` and using its page
//! allocator do not allocate either, with a counting global allocator.
//!
//! Everything that needs `unsafe` lives in small modules that own their raw state: `maparc`
//! (the mmap-backed reference count), `physmem` and `window` (mappings), `cpu` (thread-locals: the initial-exec TLS block),
//! `hook` (the hook call), `fault` (the `SIGSEGV` handler for protected pages), `stack` (stack
//! walks and symbols), `roots` (kmemleak's roots in the process), [`futex`], `console` (`write(2)`), [`probe`], `sys`, [`once`] (the
//! boot-once cell and arena) [`grow`] (releasing a removed block's host memory) and [`global`] (the allocator); `config`, `control` and `boot`
//! forbid it.
//!
//! ## Modules, top to bottom
//! No module uses one above it (`scripts/check-layers` checks that there is no cycle):
//!
//! | module     | uses                                                             |
//! |------------|------------------------------------------------------------------|
//! | `global`   | `once`, `grow`, `platform`, `cpu`, `physmem`, `config`, `console`, `roots` |
//! | `grow`     | `platform`, `futex`                                              |
//! | `boot`     | `platform`, `config`                                             |
//! | `platform` | `cpu`, `window`, `control`, `config`, `console`, `maparc`, `futex`, `sys`, `fault`, `stack` |
//! | `fault`    | `futex`                                                          |
//! | `window`   | `control`, `physmem`, `maparc`, `config` (tests)                 |
//! | `cpu`      | `control`, `maparc`, `futex`                                     |
//! | `control`  | `physmem`, `hook`, `config`, `console`, `maparc`, `sys`          |
//! | `config`   | `console`                                                        |
//! | `physmem`, `hook` | `futex`                                                   |
//! | `once`, `console`, `futex`, `maparc`, `probe`, `sys`, `hostmem`, `swapfile`, `stack`, `roots` | nothing of this crate |
//!
//! `control::Inner`, the control block a platform handle, its CPU threads and its windows
//! share, sits below all three, so none of them needs another to reach it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod boot;
mod config;
mod console;
mod control;
pub mod cpu;
mod fault;
pub mod futex;
pub mod global;
pub mod grow;
mod hook;
mod hostmem;
mod kmemcheck;
mod kmemcheck_sys;
mod maparc;
pub mod once;
mod physmem;
mod platform;
pub mod probe;
pub mod roots;
mod stack;
mod swapfile;
mod sys;
mod window;

pub use boot::boot;
pub use config::{Clock, HostedConfig, DEFAULT_MAX_PHYS};
pub use console::Console;
pub use cpu::{thread_cpu_slot, NR_CPUS, SHARED_CPU};
pub use global::KmemAlloc;
pub use grow::{Grower, Grown};
pub use hostmem::{boot_host_memory, check_host_memory, host_memory_available};
pub use physmem::DIRECT_MAP_ALIGN;
pub use platform::HostedPlatform;
pub use probe::{probe_read, probe_read_bytes, probe_write, probe_write_bytes, ProbeError};
pub use stack::run_on_temporary_stack;
pub use stack::StackWalk;
pub use swapfile::FileSwap;
pub use window::VirtWindow;

pub(crate) use kmem::PAGE_SIZE;
