//! # kds — the Linux kernel's generic data structures, in Rust
//!
//! `#![no_std]`, no allocator required for the intrusive structures. Each structure comes in
//! two layers: a raw layer that mirrors the Linux API names and argument order (as `unsafe fn`
//! where the caller owns pinning and lifetimes), so kernel code ports line by line, and a safe
//! layer on top for Rust users.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::too_many_lines)]

pub mod adapter;
pub mod hash;
pub mod hashtable;
pub mod hlist;
pub mod kfifo;
pub mod klist;
pub mod list;
pub mod lockdep;
pub mod plist;
pub mod spinlock;
pub mod stringhash;
mod sync;

// Trees and maps (issue 6).
#[cfg(feature = "alloc")]
extern crate alloc as alloc_crate;
pub mod alloc;
pub mod btree;
pub mod error;
pub mod idr;
pub mod maple_tree;
pub mod radix_tree;
pub mod rbtree;
pub mod rcu;
pub mod xarray;

pub use error::{Error, Result};

/// Computes the address of the containing struct from a pointer to one of its fields, like
/// Linux's `container_of(ptr, type, member)`.
///
/// Expands to an expression of type `*mut $ty`; dereferencing it is the caller's
/// responsibility (it is only valid if `$ptr` really points at the `$field` of a `$ty`).
#[macro_export]
macro_rules! container_of {
    ($ptr:expr, $ty:ty, $field:ident) => {{
        let __p: *const _ = $ptr;
        __p.cast::<u8>()
            .wrapping_sub(::core::mem::offset_of!($ty, $field))
            .cast::<$ty>()
            .cast_mut()
    }};
}
