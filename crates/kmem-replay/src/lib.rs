//! # kmem-replay: real Linux kernel allocation traces through kmem
//!
//! Reads the text of `/sys/kernel/tracing/trace` recorded with the `kmem` events enabled
//! (`kmalloc`, `kfree`, `kmem_cache_alloc`, `kmem_cache_free`, `mm_page_alloc`,
//! `mm_page_free`; plain text or `.xz`), and replays it on a simulated machine: every traced
//! allocation becomes a kmem allocation with the same size, GFP flags, order and cache, and
//! every free frees the object the traced pointer maps to. The report says how closely kmem
//! follows Linux: the share of kmalloc events where kmem's size class (`ksize`) equals the
//! traced `bytes_alloc`, the same for cache object sizes and page migratetypes, peak memory,
//! slabs and pages in use, external fragmentation, and the /proc files asked for.
//!
//! ```no_run
//! let trace = kmem_replay::parse::parse_file("trace.xz".as_ref()).unwrap();
//! let report = kmem_replay::run(&trace, &kmem_replay::Options::default(), &mut |_, _| {}).unwrap();
//! println!("kmalloc size-class agreement: {:.2}%", report.kmalloc_agreement());
//! ```
//!
//! Modules: [`parse`] (the ftrace text format), [`platform`] (the hosted platform with the
//! trace's CPU numbers), [`engine`] (the mapping of events to kmem calls), [`report`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod engine;
pub mod parse;
pub mod platform;
pub mod report;

pub use engine::{run, Options, Replayer};
pub use parse::{parse_file, parse_reader, Event, EventKind, Trace};
pub use report::ReplayReport;
