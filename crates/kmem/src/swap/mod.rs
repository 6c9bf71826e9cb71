//! Swap: areas and their slots (`swapfile`, mm/swapfile.c), swap entries in page-table
//! entries (`entry`, include/linux/swapops.h and arch/x86's encodings), the swap cache and
//! swap-in readahead (`swap_state`, mm/swap_state.c) and the storage under an area
//! (`backend`: a [`SwapBackend`] the caller supplies — a host file on the hosted platform, a
//! RAM region on bare metal).
//!
//! [`SwapState`] is one machine's swap: the upper layer that owns address spaces holds it
//! and passes the layer below ([`crate::vmalloc::VmLayer`]) to the calls that allocate.

pub mod backend;
pub mod entry;
pub mod swap_state;
pub mod swapfile;

pub use backend::{RamSwap, SwapBackend, SwapIoError};
pub use entry::{SwpEntry, MAX_SWAPFILES};
pub use swap_state::put_page;
pub use swapfile::{SwapInfo, SwapState, SwapStats};
