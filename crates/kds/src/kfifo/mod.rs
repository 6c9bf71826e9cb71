//! Lock-free single-producer/single-consumer FIFOs, as in `<linux/kfifo.h>` and lib/kfifo.c.
//!
//! # Layout and indices
//! A fifo is a power-of-two ring of `size` elements plus two free-running `u32` indices, `in`
//! (next slot to write) and `out` (next slot to read). They are never wrapped explicitly: the
//! slot of index `i` is `i & (size - 1)`, the fill level is `in - out` (wrapping), and the free
//! space `size - (in - out)`. This is why the size must be a power of two (a divisor of 2^32)
//! and why it is at most 2^31.
//!
//! ```text
//!   out & mask           in & mask
//!       v                    v
//!  [ .. | a | b | c | d | .. ]     len = in - out = 4
//! ```
//!
//! # Concurrency (the ordering Linux relies on)
//! One producer and one consumer may run at the same time without a lock:
//! 1. the producer reads `out` with *acquire* (the consumer has finished reading those slots),
//!    copies into the free slots, then publishes `in` with *release*;
//! 2. the consumer reads `in` with *acquire* (the producer's copies are visible), copies out,
//!    then publishes `out` with *release*.
//!
//! Each side only writes its own index, so no read-modify-write is needed (Linux's
//! `smp_wmb()` in `kfifo_copy_in/out` plays the role of the release stores). With more than one
//! producer or consumer a lock is needed, as in Linux (`kfifo_in_spinlocked`). The safe API
//! enforces the contract: mutating methods take `&mut self`, and [`KfifoBase::split`] hands out
//! one [`Producer`] and one [`Consumer`] that may live on different threads. The unsafe
//! `*_unchecked` methods are the raw lockless entry points for callers that uphold the contract
//! themselves. The loom test `tests/kfifo_loom.rs` model-checks this protocol.
//!
//! # Kinds
//! - Element fifos [`KfifoBase<T, S>`] of any `T: Copy` (a byte fifo is `T = u8`), with storage
//!   inside ([`Kfifo<T, N>`], `DECLARE_KFIFO`/`DEFINE_KFIFO`), allocated by a caller-chosen
//!   allocator ([`KfifoAllocated`], `kfifo_alloc`, rounding up to a power of two), or over a
//!   caller's buffer ([`KfifoBuffer`], `kfifo_init`, rounding down). Sizes below 2 are
//!   rejected.
//! - Record fifos [`KfifoRec<S, R>`] over a byte fifo: each record is stored as an `R`-byte
//!   (1 or 2) little-endian length header followed by the payload (`STRUCT_KFIFO_REC_1/2`).
//!
//! The Linux-named free functions (`kfifo_in`, `kfifo_out`, ...) work on both kinds through the
//! [`Fifo`] trait.

mod api;
mod fifo;
mod record;
mod storage;

pub use api::*;
pub use fifo::*;
pub use record::*;
pub use storage::*;

/// Why creating a dynamic fifo or a user copy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KfifoError {
    /// `-EINVAL`: the size is below 2 elements (or above 2^31).
    Inval,
    /// `-ENOMEM`: the allocator returned nothing.
    NoMem,
    /// `-EFAULT`: a user copy faulted; `copied` bytes were transferred before the fault.
    Fault {
        /// Bytes transferred before the fault.
        copied: usize,
    },
}
