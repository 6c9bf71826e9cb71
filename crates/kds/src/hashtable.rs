//! Fixed-size chained hash tables of hlist buckets, as in `<linux/hashtable.h>`.
//!
//! # Raw layer
//! A table is a slice of 2^bits [`HlistHead`]s: `DEFINE_HASHTABLE(name, bits)` is
//! `let name: [HlistHead; 1 << bits] = define_hashtable()` (compile-time size) and a run-time
//! sized table is any power-of-two slice, e.g. one allocated by the caller. The functions take
//! the table as a slice and derive `bits` from its length (`HASH_BITS`). A key goes to bucket
//! `hash_min(key, bits)` ([`HashKey`]).
//!
//! # Safe layer
//! [`HashTable`] owns `N` buckets (compile-time size) and must be pinned once an item is
//! added; [`HashTableSlice`] uses a caller's bucket array of run-time size. Both link items
//! through an [`HLink`] field named by a [`KeyAdapter`] (which also extracts the key), borrow
//! their items for `'a`, reject already-hashed items, and unhash everything on drop.
//!
//! # Invariants
//! Every node in bucket `b` was added with a key `k` such that `k.hash_min(bits) == b`. A table's
//! length is a power of two of at least 1.
//!
//! # Locking
//! None: the caller serialises access (Linux typically uses one lock for the table or one per
//! bucket; the hashtable functions themselves take no lock).

use core::cell::UnsafeCell;
use core::marker::{PhantomData, PhantomPinned};
use core::pin::Pin;
use core::ptr;

use crate::adapter::LinkAdapter;
pub use crate::hash::HashKey;
pub use crate::hlist::HLink;
use crate::hlist::{
    hlist_add_head, hlist_del_init, hlist_empty, hlist_unhashed, HlistHead, HlistIter, HlistNode,
    INIT_HLIST_HEAD,
};
pub use crate::list::AlreadyLinked;

/// `HASH_BITS(name)`: log2 of the number of buckets.
///
/// # Panics
/// If `table.len()` is not a power of two.
#[inline]
pub fn hash_bits(table: &[HlistHead]) -> u32 {
    assert!(
        table.len().is_power_of_two(),
        "hashtable size must be a power of two"
    );
    table.len().trailing_zeros()
}

/// The bucket index of `key` in a table of 2^bits buckets (0 for a one-bucket table).
#[inline(always)]
fn bucket_of<K: HashKey>(key: K, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        key.hash_min(bits) as usize
    }
}

/// `DEFINE_HASHTABLE(name, bits)` with `N = 1 << bits`: an array of empty buckets.
///
/// # Panics
/// At compile time (in const context) or run time if `N` is not a power of two.
pub const fn define_hashtable<const N: usize>() -> [HlistHead; N] {
    assert!(N.is_power_of_two(), "hashtable size must be a power of two");
    [const { HlistHead::new() }; N]
}

/// `hash_init(hashtable)`: empties every bucket (without touching any node).
pub fn hash_init(table: &mut [HlistHead]) {
    for b in table.iter_mut() {
        // SAFETY: `b` is a valid exclusive reference.
        unsafe { INIT_HLIST_HEAD(b) };
    }
}

/// `hash_add(hashtable, node, key)`: adds `node` to the bucket of `key`.
///
/// # Safety
/// `node` must be valid and unhashed; the table must not move while the node is on it.
#[inline]
pub unsafe fn hash_add<K: HashKey>(table: &mut [HlistHead], node: *mut HlistNode, key: K) {
    let b = bucket_of(key, hash_bits(table));
    // SAFETY: forwarded caller guarantee; `b` is in range by construction of `hash_min`.
    unsafe { hlist_add_head(node, &mut table[b]) }
}

/// `hash_hashed(node)`: whether the node is in a table.
///
/// # Safety
/// `node` must be valid.
#[inline]
pub unsafe fn hash_hashed(node: *const HlistNode) -> bool {
    // SAFETY: forwarded caller guarantee.
    !unsafe { hlist_unhashed(node) }
}

/// `hash_del(node)`: removes `node` from its table and leaves it unhashed.
///
/// # Safety
/// `node` must be valid; if hashed, its bucket must be valid.
#[inline]
pub unsafe fn hash_del(node: *mut HlistNode) {
    // SAFETY: forwarded caller guarantee.
    unsafe { hlist_del_init(node) }
}

/// `hash_empty(hashtable)`: whether every bucket is empty.
pub fn hash_empty(table: &[HlistHead]) -> bool {
    // SAFETY: `b` is a valid reference.
    table.iter().all(|b| unsafe { hlist_empty(b) })
}

/// The walk of `hash_for_each`: yields `(bucket, node)` for every node, bucket by bucket. Each
/// node's successor is read before it is yielded, so the yielded node may be deleted
/// (`hash_for_each_safe`).
pub struct HashIter<'t> {
    table: &'t [HlistHead],
    bkt: usize,
    pos: *mut HlistNode,
}

impl Iterator for HashIter<'_> {
    type Item = (usize, *mut HlistNode);
    #[inline]
    fn next(&mut self) -> Option<(usize, *mut HlistNode)> {
        while self.pos.is_null() {
            self.bkt += 1;
            if self.bkt >= self.table.len() {
                return None;
            }
            self.pos = self.table[self.bkt].first;
        }
        let cur = self.pos;
        // SAFETY: the constructor's contract keeps every node valid while iterating.
        self.pos = unsafe { (*cur).next };
        Some((self.bkt, cur))
    }
}

/// `hash_for_each(name, bkt, obj, member)`: every `(bucket, node)` of the table.
///
/// # Safety
/// Every node in the table must stay valid while iterating; only the yielded node may be
/// deleted.
pub unsafe fn hash_for_each(table: &[HlistHead]) -> HashIter<'_> {
    let pos = table.first().map_or(ptr::null_mut(), |b| b.first);
    HashIter { table, bkt: 0, pos }
}

/// `hash_for_each_safe(name, bkt, tmp, obj, member)`: as [`hash_for_each`]; the yielded node
/// may be deleted.
///
/// # Safety
/// As [`hash_for_each`].
pub unsafe fn hash_for_each_safe(table: &[HlistHead]) -> HashIter<'_> {
    // SAFETY: forwarded caller guarantee.
    unsafe { hash_for_each(table) }
}

/// `hash_for_each_possible(name, obj, member, key)`: the nodes of the bucket `key` maps to
/// (which may include nodes with other keys: compare keys in the loop).
///
/// # Safety
/// As [`hash_for_each`].
pub unsafe fn hash_for_each_possible<K: HashKey>(table: &[HlistHead], key: K) -> HlistIter<false> {
    let b = bucket_of(key, hash_bits(table));
    // SAFETY: forwarded caller guarantee.
    unsafe { crate::hlist::hlist_for_each(&table[b]) }
}

/// `hash_for_each_possible_safe(name, obj, tmp, member, key)`: as [`hash_for_each_possible`];
/// the yielded node may be deleted.
///
/// # Safety
/// As [`hash_for_each`].
pub unsafe fn hash_for_each_possible_safe<K: HashKey>(
    table: &[HlistHead],
    key: K,
) -> HlistIter<true> {
    let b = bucket_of(key, hash_bits(table));
    // SAFETY: forwarded caller guarantee.
    unsafe { crate::hlist::hlist_for_each_safe(&table[b]) }
}

/// `hash_for_each(name, bkt, obj, member)` over entries: `hash_for_each_entry!(table, T, member)`
/// yields `(bkt, *mut T)`. Must be used inside `unsafe`.
#[macro_export]
macro_rules! hash_for_each_entry {
    ($table:expr, $ty:ty, $field:ident) => {
        $crate::hashtable::hash_for_each($table)
            .map(|(b, n)| (b, $crate::container_of!(n, $ty, $field)))
    };
}

/// `hash_for_each_possible(name, obj, member, key)` over entries:
/// `hash_for_each_possible_entry!(table, T, member, key)` yields `*mut T`. Must be used inside
/// `unsafe`.
#[macro_export]
macro_rules! hash_for_each_possible_entry {
    ($table:expr, $ty:ty, $field:ident, $key:expr) => {
        $crate::hashtable::hash_for_each_possible($table, $key)
            .map(|n| $crate::container_of!(n, $ty, $field))
    };
}

// ---------------------------------------------------------------------------------------------
// Safe layer
// ---------------------------------------------------------------------------------------------

/// Names the [`HLink`] field and the key of the items of a [`HashTable`]: the hlist's
/// [`LinkAdapter`] shape plus the key.
///
/// # Safety
/// `key` must return the same value for an item for as long as it is in a table (the link
/// itself is vouched for by the `LinkAdapter` impl). Use
/// [`define_hash_adapter!`](crate::define_hash_adapter).
pub unsafe trait KeyAdapter: LinkAdapter<Link = HLink> {
    /// Its key.
    type Key: HashKey + PartialEq;
    /// Returns the key of `item`.
    fn key(item: &Self::Item) -> Self::Key;
}

/// Declares a [`KeyAdapter`]:
/// `define_hash_adapter!(pub ByPid = Task { node } key u32 => |t| t.pid);`.
#[macro_export]
macro_rules! define_hash_adapter {
    ($vis:vis $name:ident = $item:ty { $field:ident } key $key:ty => |$x:ident| $e:expr) => {
        $crate::define_link_adapter!($vis $name = $item { $field }: $crate::hlist::HLink);
        // SAFETY: the key must not change while hashed, as the caller of this macro promises
        // by using it.
        unsafe impl $crate::hashtable::KeyAdapter for $name {
            type Key = $key;
            #[inline]
            fn key($x: &$item) -> $key {
                $e
            }
        }
    };
}

/// A hash table of `N` (a power of two) hlist buckets inside the value, holding
/// `&'a A::Item`s (`DEFINE_HASHTABLE`); pin it before adding (e.g. with `core::pin::pin!`),
/// since hashed nodes point back into their bucket.
///
/// # Examples
/// ```
/// use core::pin::pin;
/// use kds::hashtable::{HLink, HashTable};
/// struct Task { pid: u32, name: &'static str, node: HLink }
/// kds::define_hash_adapter!(ByPid = Task { node } key u32 => |t| t.pid);
/// let init = Task { pid: 1, name: "init", node: HLink::new() };
/// let sh = Task { pid: 42, name: "sh", node: HLink::new() };
/// let mut table = pin!(HashTable::<ByPid, 16>::new());
/// assert!(table.as_mut().add(&init).is_ok());
/// assert!(table.as_mut().add(&sh).is_ok());
/// assert_eq!(table.find(42).map(|t| t.name), Some("sh"));
/// assert!(table.as_mut().remove(&sh));
/// assert!(table.find(42).is_none());
/// ```
pub type HashTable<'a, A, const N: usize> = HashTableIn<'a, A, InlineBuckets<N>>;

/// A hash table over a caller's run-time sized bucket array (`DECLARE_HASHTABLE` +
/// `hash_init` on allocated memory): the buckets are borrowed for `'t`, so they cannot move
/// and the table itself needs no pinning (use `Pin::new(&mut table)`).
///
/// # Examples
/// ```
/// use core::pin::Pin;
/// use kds::hashtable::{HLink, HashTableSlice};
/// use kds::hlist::HlistHead;
/// struct Obj { id: u64, node: HLink }
/// kds::define_hash_adapter!(ById = Obj { node } key u64 => |o| o.id);
/// let bits = 6; // chosen at run time
/// let mut buckets: Vec<HlistHead> = (0..1 << bits).map(|_| HlistHead::new()).collect();
/// let objs: Vec<Obj> = (0..100).map(|id| Obj { id, node: HLink::new() }).collect();
/// let mut t = HashTableSlice::<ById>::with_buckets(&mut buckets);
/// for o in &objs {
///     assert!(Pin::new(&mut t).add(o).is_ok());
/// }
/// assert_eq!(t.find(42).map(|o| o.id), Some(42));
/// ```
pub type HashTableSlice<'t, 'a, A> = HashTableIn<'a, A, SliceBuckets<'t>>;

mod private {
    use crate::hlist::HlistHead;
    /// The sealed part of [`super::Buckets`].
    pub trait Buckets {
        /// The first bucket.
        fn heads(&self) -> *mut HlistHead;
        /// log2 of the number of buckets.
        fn bits(&self) -> u32;
    }
}

/// Where a [`HashTableIn`] keeps its buckets: [`InlineBuckets`] or [`SliceBuckets`] (sealed).
pub trait Buckets: private::Buckets {}

/// `N` buckets inside the table value (must be pinned once used).
pub struct InlineBuckets<const N: usize> {
    heads: UnsafeCell<[HlistHead; N]>,
    _pin: PhantomPinned,
}

impl<const N: usize> InlineBuckets<N> {
    const BITS: u32 = {
        assert!(
            N.is_power_of_two(),
            "HashTable bucket count must be a power of two"
        );
        N.trailing_zeros()
    };
}

impl<const N: usize> private::Buckets for InlineBuckets<N> {
    #[inline(always)]
    fn heads(&self) -> *mut HlistHead {
        self.heads.get().cast()
    }
    #[inline(always)]
    fn bits(&self) -> u32 {
        Self::BITS
    }
}
impl<const N: usize> Buckets for InlineBuckets<N> {}

/// A caller's bucket array, borrowed exclusively for `'t`.
pub struct SliceBuckets<'t> {
    heads: *mut HlistHead,
    bits: u32,
    _t: PhantomData<&'t mut [HlistHead]>,
}

impl private::Buckets for SliceBuckets<'_> {
    #[inline(always)]
    fn heads(&self) -> *mut HlistHead {
        self.heads
    }
    #[inline(always)]
    fn bits(&self) -> u32 {
        self.bits
    }
}
impl Buckets for SliceBuckets<'_> {}

/// A hash table of hlist buckets `B` holding `&'a A::Item`s: [`HashTable`] (buckets inside)
/// or [`HashTableSlice`] (buckets borrowed).
///
/// # Invariants
/// Every node in bucket `b` is the link of an item borrowed for `'a` whose key hashes to `b`;
/// the buckets do not move while any node is hashed. Dropping the table unhashes every item.
pub struct HashTableIn<'a, A: KeyAdapter, B: Buckets> {
    buckets: B,
    _items: PhantomData<&'a A::Item>,
}

impl<'a, A: KeyAdapter, const N: usize> Default for HashTable<'a, A, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, A: KeyAdapter, const N: usize> HashTable<'a, A, N> {
    /// Returns an empty table (`DEFINE_HASHTABLE`).
    pub const fn new() -> Self {
        let _ = InlineBuckets::<N>::BITS;
        Self {
            buckets: InlineBuckets {
                heads: UnsafeCell::new(define_hashtable::<N>()),
                _pin: PhantomPinned,
            },
            _items: PhantomData,
        }
    }
}

impl<'t, 'a, A: KeyAdapter> HashTableSlice<'t, 'a, A> {
    /// Builds a table over `buckets` (`hash_init`: every bucket is emptied first).
    ///
    /// # Panics
    /// If `buckets.len()` is not a power of two.
    pub fn with_buckets(buckets: &'t mut [HlistHead]) -> Self {
        let bits = hash_bits(buckets);
        hash_init(buckets);
        Self {
            buckets: SliceBuckets {
                heads: buckets.as_mut_ptr(),
                bits,
                _t: PhantomData,
            },
            _items: PhantomData,
        }
    }
}

impl<'a, A: KeyAdapter, B: Buckets> HashTableIn<'a, A, B> {
    #[inline(always)]
    fn bucket(&self, key: A::Key) -> *mut HlistHead {
        let b = bucket_of(key, private::Buckets::bits(&self.buckets));
        // SAFETY: `b < 2^bits`, the number of buckets.
        unsafe { private::Buckets::heads(&self.buckets).add(b) }
    }

    #[inline(always)]
    fn table(&self) -> &[HlistHead] {
        let n = 1usize << private::Buckets::bits(&self.buckets);
        // SAFETY: the buckets are `n` initialised heads owned or exclusively borrowed by the
        // table; this shared view is only read.
        unsafe { core::slice::from_raw_parts(private::Buckets::heads(&self.buckets), n) }
    }

    /// Adds `item` under its key (`hash_add`).
    ///
    /// # Errors
    /// Returns the item back if it is already hashed.
    pub fn add(self: Pin<&mut Self>, item: &'a A::Item) -> Result<(), AlreadyLinked<&'a A::Item>> {
        let link = A::link(item);
        if link.is_hashed() {
            return Err(AlreadyLinked(item));
        }
        // SAFETY: the buckets do not move (pinned table or borrowed slice), and the node is
        // an unhashed link of an item borrowed for 'a.
        unsafe { hlist_add_head(link.as_raw(), self.bucket(A::key(item))) };
        Ok(())
    }

    /// Returns the most recently added item with `key` (`hash_for_each_possible` + compare).
    pub fn find(&self, key: A::Key) -> Option<&'a A::Item> {
        self.possible(key).find(|it| A::key(it) == key)
    }

    /// Iterates over all items whose key hashes to the bucket of `key` (possibly other keys).
    pub fn possible(&self, key: A::Key) -> impl Iterator<Item = &'a A::Item> + '_ {
        // SAFETY: every node in the table is the link of an item borrowed for 'a, and the
        // iterator borrows the table, so no node is removed meanwhile.
        unsafe { crate::hlist::hlist_for_each(self.bucket(key)) }.map(|n| {
            // SAFETY: `n` is a link yielded by the walk above, embedded in an item the table
            // borrows for 'a.
            unsafe { &*A::item(n) }
        })
    }

    /// Removes `item` if it is in this table (`hash_del` after a membership check in its
    /// bucket). Returns whether it was removed.
    pub fn remove(self: Pin<&mut Self>, item: &A::Item) -> bool {
        if !self.possible(A::key(item)).any(|x| ptr::eq(x, item)) {
            return false;
        }
        // SAFETY: the item is hashed in this table.
        unsafe { hlist_del_init(A::link(item).as_raw()) };
        true
    }

    /// Removes every item with `key`, calling `f` on each.
    pub fn remove_key(self: Pin<&mut Self>, key: A::Key, mut f: impl FnMut(&'a A::Item)) {
        // SAFETY: the `_safe` walk reads `next` before yielding, so deleting is allowed.
        for n in unsafe { crate::hlist::hlist_for_each_safe(self.bucket(key)) } {
            // SAFETY: `n` is the link of an item borrowed for 'a.
            let it = unsafe { &*A::item(n) };
            if A::key(it) == key {
                // SAFETY: `n` is hashed in this table.
                unsafe { hlist_del_init(n) };
                f(it);
            }
        }
    }

    /// Returns whether the table has no items (`hash_empty`).
    pub fn is_empty(&self) -> bool {
        hash_empty(self.table())
    }

    /// Iterates over `(bucket, item)` pairs (`hash_for_each`).
    pub fn iter(&self) -> impl Iterator<Item = (usize, &'a A::Item)> + '_ {
        // SAFETY: every node in the table is the link of an item borrowed for 'a, and the iterator
        // borrows the table (`&self`), so no node is removed or moved while `hash_for_each` walks
        // the buckets.
        unsafe { hash_for_each(self.table()) }.map(|(b, n)| {
            // SAFETY: `n` is a link yielded by the bucket walk, embedded in an item the table
            // borrows for 'a, so `A::item(n)` is a live item and a shared reference to it is valid
            // for 'a.
            (b, unsafe { &*A::item(n) })
        })
    }

    /// Removes every item.
    pub fn clear(self: Pin<&mut Self>) {
        self.clear_inner();
    }

    fn clear_inner(&self) {
        let heads = private::Buckets::heads(&self.buckets);
        for i in 0..1usize << private::Buckets::bits(&self.buckets) {
            // SAFETY: `i` is in range; every node is the link of a live item (type
            // invariant); the buckets are ours to modify (exclusive table access by callers).
            unsafe {
                let b = heads.add(i);
                let mut n = (*b).first;
                while !n.is_null() {
                    let next = (*n).next;
                    (*n).next = ptr::null_mut();
                    (*n).pprev = ptr::null_mut();
                    n = next;
                }
                (*b).first = ptr::null_mut();
            }
        }
    }
}

impl<A: KeyAdapter, B: Buckets> Drop for HashTableIn<'_, A, B> {
    fn drop(&mut self) {
        self.clear_inner();
    }
}
