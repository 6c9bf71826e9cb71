//! The one adapter shape of the safe intrusive containers.
//!
//! The safe layers of `list` (`List`), `hlist` (`HList`), `plist` (`PList`) and `hashtable`
//! (`HashTable`) all hold `&'a Item`s linked through a link field embedded in `Item` (`Link`,
//! `HLink`, `PLink`: each a `#[repr(transparent)]` wrapper around the raw layer's node). Which
//! field is named by an *adapter*, a zero-sized type implementing [`LinkAdapter`]: the item
//! type, the link type and the field's offset, from which the container gets the link of an
//! item (`link`) and the item of a raw node (`item`, Linux's `container_of`). Each container's
//! own adapter trait is this one with the link type fixed (`list::Adapter`, `hlist::HAdapter`,
//! `plist::PAdapter`, each implemented for every matching `LinkAdapter`), and the hash table's
//! `hashtable::KeyAdapter` adds the key. One macro,
//! [`define_link_adapter!`](crate::define_link_adapter), declares them all;
//! `define_list_adapter!` and its siblings are that macro with the link type filled in.
//!
//! This module sits below every container and names none of them in code, so the containers
//! share it without depending on one another.

/// A link type that a safe container embeds in its items, over a raw node of type `Node`.
///
/// # Safety
/// `Self` must be `#[repr(transparent)]` over `Node` (or over an `UnsafeCell<Node>`), so that
/// a pointer to the link and a pointer to its node are the same address.
pub unsafe trait IntrusiveLink {
    /// The raw layer's node the link wraps (`ListHead`, `HlistNode`, `PlistNode`).
    type Node;
}

/// Names the field of type [`LinkAdapter::Link`] inside [`LinkAdapter::Item`] that a safe
/// container links items through.
///
/// # Safety
/// `OFFSET` must be the byte offset of a field of type `Link` inside `Item`. Use
/// [`define_link_adapter!`](crate::define_link_adapter) (or a container's own macro), which
/// takes the offset with `offset_of!` and checks the field's type.
pub unsafe trait LinkAdapter {
    /// The struct on the container.
    type Item;
    /// The link type of its field.
    type Link: IntrusiveLink;
    /// `offset_of!(Item, link_field)`.
    const OFFSET: usize;

    /// Returns the link inside `item`.
    #[inline(always)]
    fn link(item: &Self::Item) -> &Self::Link {
        // SAFETY: the trait's contract: a `Link` lives at `OFFSET` inside `Item`, so the
        // result points into `item` and lives as long as it.
        unsafe {
            &*(item as *const Self::Item)
                .cast::<u8>()
                .add(Self::OFFSET)
                .cast::<Self::Link>()
        }
    }

    /// Returns the item whose link's node is `node` (`container_of`).
    ///
    /// # Safety
    /// `node` must be the node of the link of a live `Item` (the returned pointer is then
    /// valid for as long as that item).
    #[inline(always)]
    unsafe fn item(node: *const <Self::Link as IntrusiveLink>::Node) -> *const Self::Item {
        // The node is at the link's address (`IntrusiveLink`'s contract).
        node.cast::<u8>()
            .wrapping_sub(Self::OFFSET)
            .cast::<Self::Item>()
    }
}

/// Declares a [`LinkAdapter`]: `define_link_adapter!(pub ByLru = Page { lru }: kds::list::Link);`
/// links `Page` through its `lru` field of type `kds::list::Link`.
#[macro_export]
macro_rules! define_link_adapter {
    ($vis:vis $name:ident = $item:ty { $field:ident }: $link:ty) => {
        $vis struct $name;
        // SAFETY: the offset is taken with `offset_of!`, and the closure below only compiles
        // if the field has the link type.
        unsafe impl $crate::adapter::LinkAdapter for $name {
            type Item = $item;
            type Link = $link;
            const OFFSET: usize = {
                let _check: fn(&$item) -> &$link = |x| &x.$field;
                ::core::mem::offset_of!($item, $field)
            };
        }
    };
}
