//! XArray entry encoding (include/linux/xarray.h).
//!
//! An entry is one machine word:
//! - `0`: empty (`NULL`);
//! - low bits `x1`: a value entry, `(v << 1) | 1` ([`xa_mk_value`]), for integers up to
//!   `LONG_MAX`;
//! - low bits `00`: a pointer (at least 4-byte aligned), never dereferenced by the array;
//! - low bits `10`: an internal entry (`(v << 2) | 2`): node pointers (values above 4096),
//!   sibling entries of multi-index entries (internal 0..=62), the retry entry (internal 256)
//!   and the zero entry (internal 257) that marks a reserved slot. Users cannot store the
//!   internal values up to 4096 (`-EINVAL`), except that [`XA_ZERO_ENTRY`] may be used as the
//!   *old* value of a compare-and-exchange, as in Linux. Above 4096 they are "node-looking"
//!   user pointers (`&name[2]`): stored only in leaf slots, never in the head, and refused
//!   for orders `>= XA_CHUNK_SHIFT` (a non-leaf slot would make them a child node).

use core::num::NonZeroUsize;
use core::ptr::NonNull;

pub(crate) const fn mk_internal(v: usize) -> usize {
    (v << 2) | 2
}
pub(crate) const fn is_internal(e: usize) -> bool {
    e & 3 == 2
}
pub(crate) const fn is_value(e: usize) -> bool {
    e & 1 == 1
}
/// `xa_is_node`: an internal entry above 4096 is a node pointer, except in a leaf slot
/// (see [`is_child`]).
pub(crate) const fn is_node(e: usize) -> bool {
    is_internal(e) && e > 4096
}
/// True if the slot entry `e` of a node of `shift` is a child node. A leaf's slots
/// (`shift == 0`) always hold entries: a user's pointer that looks like a node (an unaligned
/// `char *`, low bits `10`, above 4096) is stored there, never in the head (Linux:
/// `xas_store`'s `allow_root`, readers descending only while `shift > 0`).
pub(crate) const fn is_child(e: usize, shift: u8) -> bool {
    shift > 0 && is_node(e)
}
/// True if users may store `e`: anything but the reserved internal entries (`<= 4096`:
/// siblings, retry, zero), as Linux's `xa_is_advanced` refusal in `xa_store`.
pub(crate) const fn storable(e: usize) -> bool {
    !is_internal(e) || is_node(e)
}
pub(crate) const fn mk_sibling(offset: usize) -> usize {
    mk_internal(offset)
}
/// `xa_is_sibling`: internal entries below `xa_mk_sibling(XA_CHUNK_SIZE - 1)`.
pub(crate) const fn is_sibling(e: usize) -> bool {
    is_internal(e) && e < mk_sibling(super::XA_CHUNK_SIZE - 1)
}
pub(crate) const fn to_sibling(e: usize) -> usize {
    e >> 2
}
/// `XA_RETRY_ENTRY` (internal 256): a reader must restart its walk.
pub(crate) const RETRY: usize = mk_internal(256);
/// `XA_ZERO_ENTRY` (internal 257): reserved; reads as empty.
pub(crate) const ZERO: usize = mk_internal(257);

/// A non-empty XArray entry: a value entry, an aligned pointer, [`XA_ZERO_ENTRY`], or any other
/// raw word ([`XaEntry::from_raw`]; e.g. an unaligned `char *`, which is stored and returned
/// unchanged unless it is a reserved internal value up to 4096).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(transparent)]
pub struct XaEntry(NonZeroUsize);

/// `XA_ZERO_ENTRY`: the entry of a reserved slot. Loads return `None` for it; it is only useful
/// as the `old` argument of [`XArray::cmpxchg`](super::XArray::cmpxchg) (storing it is `-EINVAL`).
pub const XA_ZERO_ENTRY: XaEntry = XaEntry(match NonZeroUsize::new(ZERO) {
    Some(n) => n,
    None => panic!(),
});

impl XaEntry {
    /// `xa_mk_value`: returns the value entry for `v`.
    ///
    /// # Panics
    /// If `v > isize::MAX` (Linux: `WARN_ON((long)v < 0)`).
    pub const fn from_value(v: usize) -> XaEntry {
        assert!(
            v <= isize::MAX as usize,
            "xa_mk_value: value above LONG_MAX"
        );
        match NonZeroUsize::new((v << 1) | 1) {
            Some(n) => XaEntry(n),
            None => panic!(),
        }
    }

    /// Returns the entry for the pointer `p`, or `None` if `p` is not 4-byte aligned (such a
    /// pointer would be confused with a value or internal entry).
    pub fn from_ptr<T>(p: NonNull<T>) -> Option<XaEntry> {
        let a = p.as_ptr() as usize;
        if a & 3 != 0 {
            return None;
        }
        NonZeroUsize::new(a).map(XaEntry)
    }

    /// Returns the entry with raw word `raw`, or `None` for 0.
    pub const fn from_raw(raw: usize) -> Option<XaEntry> {
        match NonZeroUsize::new(raw) {
            Some(n) => Some(XaEntry(n)),
            None => None,
        }
    }

    /// Returns the raw word.
    pub const fn raw(self) -> usize {
        self.0.get()
    }

    /// `xa_is_value`.
    pub const fn is_value(self) -> bool {
        is_value(self.0.get())
    }

    /// `xa_to_value`: the integer of a value entry, or `None` for a pointer.
    pub const fn to_value(self) -> Option<usize> {
        if self.is_value() {
            Some(self.0.get() >> 1)
        } else {
            None
        }
    }

    /// The pointer of a pointer entry, or `None` for a value or internal entry.
    pub fn as_ptr<T>(self) -> Option<NonNull<T>> {
        let r = self.0.get();
        if r & 3 != 0 {
            return None;
        }
        NonNull::new(r as *mut T)
    }

    /// `xa_is_internal`: true for [`XA_ZERO_ENTRY`].
    pub const fn is_internal(self) -> bool {
        is_internal(self.0.get())
    }
}

/// `xa_mk_value`.
pub const fn xa_mk_value(v: usize) -> XaEntry {
    XaEntry::from_value(v)
}

/// `xa_to_value`.
pub const fn xa_to_value(e: XaEntry) -> Option<usize> {
    e.to_value()
}

/// `xa_is_value`.
pub const fn xa_is_value(e: XaEntry) -> bool {
    e.is_value()
}

pub(crate) fn to_opt(raw: usize) -> Option<XaEntry> {
    if raw == ZERO {
        return None;
    }
    XaEntry::from_raw(raw)
}

pub(crate) fn raw_of(e: Option<XaEntry>) -> usize {
    e.map_or(0, XaEntry::raw)
}
