//! Managed device resources (drivers/base/devres.c, include/linux/device/devres.h).
//!
//! A resource is a devres node — a header and the resource's data in one kmalloc block,
//! as Linux's `struct devres` — on its device's `devres_head` list, oldest first. When
//! the device's probe fails or its driver is unbound, every node is released newest first
//! (`devres_release_all`): its release runs, then the block is freed. Groups are two
//! marker nodes (`grp<` and `grp>`) bracketing the resources added between
//! `devres_open_group` and `devres_close_group`, so a part of a probe can be undone alone.
//!
//! The `devm_*` allocators (kmalloc, pages, actions) are devres nodes with Linux's release
//! names (`devm_kzalloc_release`, `devm_pages_release`, the action's name), so the
//! `devres.log=1` trace shows them as Linux's does:
//! `platform camera0: DEVRES ADD ffff888003b1e000 devm_kzalloc_release (100 bytes)`
//! (the node's address printed as `%p` prints with `no_hash_pointers`).
//!
//! A devm pointer freed with plain `kfree` points inside its kmalloc block (after the
//! header): SLUB reports it as Linux does (`BUG kmalloc-192: Invalid object pointer …`) and
//! frees nothing, so the resource stays managed and is released once, at unbind.
//!
//! # Locking
//! `&dev->devres_lock` protects the list; the registry lock (`device_model_lock`) is taken
//! only to find the device, then dropped. Nodes are allocated before the devres lock is
//! taken and freed after it is dropped (`release_nodes`); a node's data belongs to its
//! owner, not to the lock.
//!
//! # Safety of the public API
//! Data pointers handed back to callers are only ever compared, never dereferenced, until
//! they are found on a device's list (`devm_kfree`, `devm_krealloc`, `devres_find`): a
//! foreign pointer is a `WARN` and an error, not a wild read. A resource allocated but not
//! yet added is a [`DevresBox`], consumed by `devres_add` or `devres_free`.

use core::num::NonZeroUsize;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use kds::list::{self, ListHead};

use super::{links, DevLayer, Device, DeviceHandle};
use crate::addr::{Order, VirtAddr};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::platform::{LogLevel, Platform};

/// A release function of a custom devres (`dr_release_t`): called with the device and the
/// resource's data when the resource is released.
pub type DrRelease<P> = fn(&DevLayer<P>, DeviceHandle, *mut u8);

/// A devm action (`devm_add_action`'s `void (*action)(void *)`).
pub type DevmAction<P> = fn(&DevLayer<P>, usize);

/// What releasing a node does.
enum Release<P: Platform> {
    /// `devm_kmalloc_release`: nothing beyond freeing the block.
    Kmalloc,
    /// `devm_pages_release`: `free_pages(addr, order)`.
    Pages {
        addr: VirtAddr,
        order: Order,
    },
    /// `devm_action_release`: the action with its data.
    Action {
        f: DevmAction<P>,
        data: usize,
    },
    /// A caller's release function (`devres_alloc`).
    Custom(DrRelease<P>),
    /// `group_open_release` / `group_close_release`: markers, nothing to release.
    GroupOpen,
    GroupClose,
}

impl<P: Platform> Clone for Release<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Platform> Copy for Release<P> {}

impl<P: Platform> Release<P> {
    /// Whether two releases are "the same release function" in Linux's sense (`find_dr`
    /// compares function pointers); actions and pages also compare their data, as their
    /// match functions do.
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Release::Kmalloc, Release::Kmalloc) => true,
            (Release::Pages { addr: a, .. }, Release::Pages { addr: b, .. }) => a == b,
            (Release::Action { f: f1, data: d1 }, Release::Action { f: f2, data: d2 }) => {
                *f1 as usize == *f2 as usize && d1 == d2
            }
            (Release::Custom(a), Release::Custom(b)) => *a as usize == *b as usize,
            _ => false,
        }
    }
}

/// `struct devres_node`.
#[repr(C)]
struct DevresNode<P: Platform> {
    entry: ListHead,
    release: Release<P>,
    /// `CONFIG_DEBUG_DEVRES`'s name and size, for the trace.
    name: &'static str,
    size: usize,
}

/// `struct devres_group`: the open and close markers and the group's id.
#[repr(C)]
struct DevresGroup<P: Platform> {
    node: [DevresNode<P>; 2],
    id: usize,
    color: i32,
}

/// Where the data starts in a devres block: after the header, at `ARCH_DMA_MINALIGN` (8 on
/// x86, arch/x86/include/asm/cache.h via `ARCH_KMALLOC_MINALIGN`).
const fn data_offset<P: Platform>() -> usize {
    core::mem::size_of::<DevresNode<P>>().next_multiple_of(8)
}

/// A devres allocated by [`DevLayer::devres_alloc`] and not yet added to a device.
pub struct DevresBox<P: Platform> {
    node: NonNull<DevresNode<P>>,
}

impl<P: Platform> DevresBox<P> {
    /// The resource's data (`size` zeroed bytes at allocation).
    pub fn data(&self) -> NonNull<u8> {
        // SAFETY: the block is `data_offset + size` bytes; the offset stays inside it.
        unsafe { NonNull::new_unchecked(self.node.as_ptr().cast::<u8>().add(data_offset::<P>())) }
    }
}

fn data_of<P: Platform>(n: *mut DevresNode<P>) -> *mut u8 {
    n.cast::<u8>().wrapping_add(data_offset::<P>())
}

fn handle_of<P: Platform>(d: *mut Device<P>) -> DeviceHandle {
    DeviceHandle(NonZeroUsize::new(d as usize).expect("a device is at a non-null address"))
}

/// `node_to_group`.
fn node_to_group<P: Platform>(n: *mut DevresNode<P>) -> Option<*mut DevresGroup<P>> {
    // SAFETY: `n` is a live node (callers hold the devres lock or own it).
    match unsafe { &(*n).release } {
        Release::GroupOpen => Some(n.cast::<DevresGroup<P>>()),
        Release::GroupClose => Some(
            n.cast::<u8>()
                .wrapping_sub(core::mem::size_of::<DevresNode<P>>())
                .cast::<DevresGroup<P>>(),
        ),
        _ => None,
    }
}

impl<P: Platform> DevLayer<P> {
    /// `devres_log`: the `DEVRES <op>` trace line when `devres.log=1`.
    fn devres_log(&self, d: *mut Device<P>, n: *mut DevresNode<P>, op: &str) {
        if !self.dev.log_devres.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: `n` is a live node of `d` (callers hold the devres lock or own the node).
        let (name, size) = unsafe { ((*n).name, (*n).size) };
        let w = self.arch().ptr_hex_digits();
        let addr = self.to_model(n as usize);
        self.dev_printk(
            LogLevel::Err,
            d,
            format_args!("DEVRES {op:>3} {addr:0w$x} {name} ({size} bytes)"),
        );
    }

    /// `alloc_dr`: a devres block of `size` data bytes, header initialised, not linked.
    fn alloc_dr(
        &self,
        release: Release<P>,
        size: usize,
        gfp: GfpFlags,
        name: &'static str,
    ) -> Option<*mut DevresNode<P>> {
        let total = data_offset::<P>().checked_add(size)?;
        let p = self.kmalloc(total, gfp)?.as_ptr().cast::<DevresNode<P>>();
        // SAFETY: a fresh kmalloc block of at least the header's size, 8-aligned (kmalloc's
        // minimum alignment, the header's alignment).
        unsafe {
            p.write(DevresNode {
                entry: ListHead::new(),
                release,
                name,
                size,
            });
            ListHead::init(&mut (*p).entry);
        }
        Some(p)
    }

    /// `add_dr` (devres lock held).
    ///
    /// # Safety
    /// `d` is live with its devres lock held by the caller; `n` is an unlinked node.
    unsafe fn add_dr(&self, d: *mut Device<P>, n: *mut DevresNode<P>) {
        self.devres_log(d, n, "ADD");
        // SAFETY: by the contract the list is ours under the lock and `n` unlinked.
        unsafe { list::list_add_tail(&mut (*n).entry, &mut (*d).devres_head) };
    }

    /// Runs `f` with the device's devres lock held; `ENODEV` for an unknown handle. The
    /// registry lock is dropped first: the device cannot go away meanwhile only if the caller
    /// is its driver (probe, remove, bound), which is the devm API's contract in Linux too;
    /// for other callers the device is looked up again under the registry lock, which is
    /// therefore kept.
    fn with_devres<T>(
        &self,
        h: DeviceHandle,
        f: impl FnOnce(*mut Device<P>) -> T,
    ) -> Result<T, Errno> {
        // Lock order: device_model_lock (rank 0), &dev->devres_lock under it; nothing
        // allocates under the devres lock; docs/LOCKING.md.
        self.with_device(h, |d| {
            // SAFETY: `d` is live while the registry lock is held (with_device holds it).
            let _g = unsafe { (*d).devres_lock.lock() };
            f(d)
        })
    }

    /// `devres_alloc`: `size` zeroed bytes of resource data, released by `release`.
    pub fn devres_alloc(
        &self,
        release: DrRelease<P>,
        size: usize,
        gfp: GfpFlags,
        name: &'static str,
    ) -> Option<DevresBox<P>> {
        let n = self.alloc_dr(
            Release::Custom(release),
            size,
            gfp | GfpFlags::__GFP_ZERO,
            name,
        )?;
        Some(DevresBox {
            // SAFETY: alloc_dr returns a kmalloc block, never null.
            node: unsafe { NonNull::new_unchecked(n) },
        })
    }

    /// `devres_free`: frees a devres that was never added.
    pub fn devres_free(&self, res: DevresBox<P>) {
        self.kfree(res.node.as_ptr().cast::<u8>());
    }

    /// `devres_add`: registers the resource with the device; its release runs when the
    /// driver is unbound. Returns the data pointer. For an unknown device the resource is
    /// freed (without its release) and `ENODEV` returned.
    pub fn devres_add(&self, dev: DeviceHandle, res: DevresBox<P>) -> Result<NonNull<u8>, Errno> {
        let data = res.data();
        let n = res.node.as_ptr();
        // SAFETY: `d` is live with its devres lock held (with_devres), `n` our unlinked node.
        let r = self.with_devres(dev, |d| unsafe { self.add_dr(d, n) });
        if r.is_err() {
            self.devres_free(res);
        }
        r.map(|()| data)
    }

    /// `find_dr` (devres lock held): the newest node with `release` whose data satisfies
    /// `matches`.
    ///
    /// # Safety
    /// `d` is live with its devres lock held.
    unsafe fn find_dr(
        &self,
        d: *mut Device<P>,
        release: &Release<P>,
        matches: &mut dyn FnMut(*mut u8) -> bool,
    ) -> Option<*mut DevresNode<P>> {
        // SAFETY: the list is stable under the lock; entries are live nodes' `entry`.
        unsafe {
            let mut found = None;
            for l in links(&(*d).devres_head) {
                let n = kds::container_of!(l, DevresNode<P>, entry);
                if (*n).release.same(release) && matches(data_of(n)) {
                    found = Some(n);
                }
            }
            found
        }
    }

    /// `devres_find`: the data of the newest resource of `dev` released by `release` for
    /// which `matches` holds.
    pub fn devres_find(
        &self,
        dev: DeviceHandle,
        release: DrRelease<P>,
        matches: &mut dyn FnMut(*mut u8) -> bool,
    ) -> Option<NonNull<u8>> {
        // SAFETY: `d` is live with its devres lock held (with_devres).
        let n = self
            .with_devres(dev, |d| unsafe {
                self.find_dr(d, &Release::Custom(release), matches)
            })
            .ok()??;
        NonNull::new(data_of(n))
    }

    /// `devres_remove`: unlinks the newest matching resource and hands it back, unreleased.
    pub fn devres_remove(
        &self,
        dev: DeviceHandle,
        release: DrRelease<P>,
        matches: &mut dyn FnMut(*mut u8) -> bool,
    ) -> Option<DevresBox<P>> {
        self.remove_dr(dev, &Release::Custom(release), matches)
            .map(|n| DevresBox {
                // SAFETY: a node found on the list is a non-null kmalloc block.
                node: unsafe { NonNull::new_unchecked(n) },
            })
    }

    fn remove_dr(
        &self,
        dev: DeviceHandle,
        release: &Release<P>,
        matches: &mut dyn FnMut(*mut u8) -> bool,
    ) -> Option<*mut DevresNode<P>> {
        self.with_devres(dev, |d| {
            // SAFETY: `d` is live with its devres lock held; the node found is unlinked
            // under it and becomes the caller's.
            unsafe {
                let n = self.find_dr(d, release, matches)?;
                list::list_del_init(&mut (*n).entry);
                self.devres_log(d, n, "REM");
                Some(n)
            }
        })
        .ok()?
    }

    /// `devres_destroy`: removes and frees the newest matching resource without calling its
    /// release; `ENOENT` if none matches.
    pub fn devres_destroy(
        &self,
        dev: DeviceHandle,
        release: DrRelease<P>,
        matches: &mut dyn FnMut(*mut u8) -> bool,
    ) -> Result<(), Errno> {
        let res = self
            .devres_remove(dev, release, matches)
            .ok_or(Errno::ENOENT)?;
        self.devres_free(res);
        Ok(())
    }

    /// `devres_release`: removes the newest matching resource, calls its release and frees
    /// it; `ENOENT` if none matches.
    pub fn devres_release(
        &self,
        dev: DeviceHandle,
        release: DrRelease<P>,
        matches: &mut dyn FnMut(*mut u8) -> bool,
    ) -> Result<(), Errno> {
        let n = self
            .remove_dr(dev, &Release::Custom(release), matches)
            .ok_or(Errno::ENOENT)?;
        self.run_release(dev, n);
        self.kfree(n.cast::<u8>());
        Ok(())
    }

    /// Runs a removed node's release (no lock held).
    fn run_release(&self, dev: DeviceHandle, n: *mut DevresNode<P>) {
        // SAFETY: `n` is unlinked and owned by the caller.
        let rel = unsafe { (*n).release };
        match rel {
            Release::Kmalloc | Release::GroupOpen | Release::GroupClose => {}
            Release::Pages { addr, order } => self.free_pages(addr, order),
            Release::Action { f, data } => f(self, data),
            Release::Custom(f) => f(self, dev, data_of(n)),
        }
    }

    /// `remove_nodes`: moves the nodes from `first` up to `end` onto `todo` — every
    /// resource, and the markers of every group wholly inside the range (both markers of a
    /// closed group, the open marker of an open one); other markers stay.
    ///
    /// # Safety
    /// The devres lock of the list is held; `first` and `end` are entries (or the head) of
    /// it with `first` not after `end`; `todo` is an initialised local head.
    unsafe fn remove_nodes(first: *mut ListHead, end: *mut ListHead, todo: *mut ListHead) -> usize {
        let mut cnt = 0;
        let mut nr_groups = 0;
        let mut first = first;
        let mut cur = first;
        // SAFETY: the list is ours under the lock (contract); entries are
        // live nodes' `entry`; moving a node to `todo` is done after reading its `next`.
        unsafe {
            // First pass: resources to `todo`, group colours cleared.
            while !ptr::eq(cur, end) {
                let n = kds::container_of!(cur, DevresNode<P>, entry);
                cur = (*cur).next;
                if let Some(g) = node_to_group(n) {
                    (*g).color = 0;
                    nr_groups += 1;
                } else {
                    if ptr::eq(&(*n).entry, first) {
                        first = (*first).next;
                    }
                    list::list_move_tail(&mut (*n).entry, todo);
                    cnt += 1;
                }
            }
            if nr_groups == 0 {
                return cnt;
            }
            // Second pass: a group gets colour 2 when wholly in the range.
            cur = first;
            while !ptr::eq(cur, end) {
                let n = kds::container_of!(cur, DevresNode<P>, entry);
                cur = (*cur).next;
                let Some(g) = node_to_group(n) else { continue };
                (*g).color += 1;
                if list::list_empty(&(*g).node[1].entry) {
                    (*g).color += 1;
                }
                if (*g).color == 2 {
                    list::list_move_tail(&mut (*g).node[0].entry, todo);
                    list::list_del_init(&mut (*g).node[1].entry);
                }
            }
        }
        cnt
    }

    /// `release_nodes`: releases the nodes on `todo`, newest first, and frees them.
    ///
    /// # Safety
    /// `todo` is a local list of nodes removed from `d`'s list, owned by the caller; no lock
    /// is held.
    unsafe fn release_nodes(&self, d: *mut Device<P>, todo: *mut ListHead) {
        let h = handle_of(d);
        // SAFETY: `todo` is ours (contract); each node is taken off it before it is freed.
        unsafe {
            while !list::list_empty(todo) {
                let l = (*todo).prev;
                list::list_del_init(l);
                let n = kds::container_of!(l, DevresNode<P>, entry);
                self.devres_log(d, n, "REL");
                self.run_release(h, n);
                // A group's open marker heads the group's block.
                self.kfree(n.cast::<u8>());
            }
        }
    }

    /// `devres_release_all`: releases every resource of `d` (driver unbinding, a failed
    /// probe, the device's release). Returns how many there were.
    pub(crate) fn devres_release_all(&self, d: *mut Device<P>) -> usize {
        let mut todo = ListHead::new();
        let todo_p: *mut ListHead = &mut todo;
        // SAFETY: `todo` is a local head, initialised in place and not moved after.
        unsafe { ListHead::init(todo_p) };
        let cnt = {
            // SAFETY: callers pass a device they keep alive (busy, or unlinked and owned).
            // Lock order: &dev->devres_lock, alone; docs/LOCKING.md.
            let _g = unsafe { (*d).devres_lock.lock() };
            // SAFETY: the lock is held; the whole list is the range.
            unsafe {
                let head: *mut ListHead = &mut (*d).devres_head;
                Self::remove_nodes((*head).next, head, todo_p)
            }
        };
        // SAFETY: the nodes on `todo` were removed from `d`'s list and are ours; no lock held.
        unsafe { self.release_nodes(d, todo_p) };
        cnt
    }

    /// `find_group` (devres lock held): the group with `id`, or the newest open one.
    ///
    /// # Safety
    /// `d` is live with its devres lock held.
    unsafe fn find_group(
        &self,
        d: *mut Device<P>,
        id: Option<usize>,
    ) -> Option<*mut DevresGroup<P>> {
        // SAFETY: the list is stable under the lock.
        unsafe {
            let mut found = None;
            for l in links(&(*d).devres_head) {
                let n = kds::container_of!(l, DevresNode<P>, entry);
                if !matches!((*n).release, Release::GroupOpen) {
                    continue;
                }
                let g = n.cast::<DevresGroup<P>>();
                let hit = match id {
                    Some(id) => (*g).id == id,
                    None => list::list_empty(&(*g).node[1].entry),
                };
                if hit {
                    found = Some(g);
                }
            }
            found
        }
    }

    /// `devres_open_group`: opens a group; returns its id (`id`, or the group's own address
    /// when `None`), or `None` without memory or device.
    pub fn devres_open_group(
        &self,
        dev: DeviceHandle,
        id: Option<NonZeroUsize>,
        gfp: GfpFlags,
    ) -> Option<usize> {
        let g = self
            .kmalloc(core::mem::size_of::<DevresGroup<P>>(), gfp)?
            .as_ptr()
            .cast::<DevresGroup<P>>();
        let marker = |release, name| DevresNode {
            entry: ListHead::new(),
            release,
            name,
            size: 0,
        };
        let gid = id.map_or(g as usize, NonZeroUsize::get);
        // SAFETY: a fresh kmalloc block of the group's size and alignment, initialised before
        // it is linked.
        unsafe {
            g.write(DevresGroup {
                node: [
                    marker(Release::GroupOpen, "grp<"),
                    marker(Release::GroupClose, "grp>"),
                ],
                id: gid,
                color: 0,
            });
            ListHead::init(&mut (*g).node[0].entry);
            ListHead::init(&mut (*g).node[1].entry);
        }
        // SAFETY: the device is live with its devres lock held; the marker is unlinked.
        let r = self.with_devres(dev, |d| unsafe { self.add_dr(d, &mut (*g).node[0]) });
        if r.is_err() {
            self.kfree(g.cast::<u8>());
            return None;
        }
        Some(gid)
    }

    /// `devres_close_group`: closes the group `id` (or the newest open one). A group that
    /// does not exist is a `WARN`.
    #[track_caller]
    pub fn devres_close_group(&self, dev: DeviceHandle, id: Option<usize>) {
        // SAFETY: the device is live with its devres lock held; the close marker of a found
        // group is unlinked until now.
        let found = self.with_devres(dev, |d| unsafe {
            let g = self.find_group(d, id)?;
            self.add_dr(d, &mut (*g).node[1]);
            Some(())
        });
        if !matches!(found, Ok(Some(()))) {
            self.warn(format_args!("devres_close_group: no such group"));
        }
    }

    /// `devres_remove_group`: removes the group's markers, keeping its resources (they
    /// join the enclosing scope).
    #[track_caller]
    pub fn devres_remove_group(&self, dev: DeviceHandle, id: Option<usize>) {
        // SAFETY: the device is live with its devres lock held; the group's markers are
        // unlinked under it and the group becomes ours.
        let g = self.with_devres(dev, |d| unsafe {
            let g = self.find_group(d, id)?;
            list::list_del_init(&mut (*g).node[0].entry);
            list::list_del_init(&mut (*g).node[1].entry);
            self.devres_log(d, &mut (*g).node[0], "REM");
            Some(g)
        });
        match g {
            Ok(Some(g)) => self.kfree(g.cast::<u8>()),
            _ => self.warn(format_args!("devres_remove_group: no such group")),
        }
    }

    /// `devres_release_group`: releases every resource of the group (newest first) and the
    /// group; returns how many resources were released. `ENOENT` (and a `WARN`) if the
    /// group does not exist.
    #[track_caller]
    pub fn devres_release_group(
        &self,
        dev: DeviceHandle,
        id: Option<usize>,
    ) -> Result<usize, Errno> {
        let mut todo = ListHead::new();
        let todo_p: *mut ListHead = &mut todo;
        // SAFETY: a local head, initialised in place and not moved after.
        unsafe { ListHead::init(todo_p) };
        let r = self.with_devres(dev, |d| {
            // SAFETY: the device is live with its devres lock held; the range runs from the
            // open marker to after the close marker (or the list's end for an open group).
            unsafe {
                let g = self.find_group(d, id)?;
                let first: *mut ListHead = &mut (*g).node[0].entry;
                let end: *mut ListHead = if list::list_empty(&(*g).node[1].entry) {
                    &mut (*d).devres_head
                } else {
                    (*g).node[1].entry.next
                };
                Some((d, Self::remove_nodes(first, end, todo_p)))
            }
        })?;
        let Some((d, cnt)) = r else {
            self.warn(format_args!("devres_release_group: no such group"));
            return Err(Errno::ENOENT);
        };
        // SAFETY: the nodes on `todo` were removed from `d`'s list and are ours.
        unsafe { self.release_nodes(d, todo_p) };
        Ok(cnt)
    }

    // ------------------------------------------------------------------ devm allocators

    /// `devm_kmalloc`: `size` bytes freed when the driver is unbound. 0 bytes give
    /// `ZERO_SIZE_PTR`, as Linux's.
    #[track_caller]
    pub fn devm_kmalloc(
        &self,
        dev: DeviceHandle,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        if size == 0 {
            return NonNull::new(crate::slab::common::ZERO_SIZE_PTR as *mut u8);
        }
        // Linux names the node devm_kzalloc_release "for historical reasons".
        let n = self.alloc_dr(Release::Kmalloc, size, gfp, "devm_kzalloc_release")?;
        // SAFETY: `d` is live with its devres lock held; `n` is our unlinked node.
        match self.with_devres(dev, |d| unsafe { self.add_dr(d, n) }) {
            Ok(()) => NonNull::new(data_of(n)),
            Err(_) => {
                self.kfree(n.cast::<u8>());
                None
            }
        }
    }

    /// `devm_kzalloc`.
    #[track_caller]
    pub fn devm_kzalloc(
        &self,
        dev: DeviceHandle,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        self.devm_kmalloc(dev, size, gfp | GfpFlags::__GFP_ZERO)
    }

    /// `devm_kmalloc_array`: `None` when `n * size` overflows.
    #[track_caller]
    pub fn devm_kmalloc_array(
        &self,
        dev: DeviceHandle,
        n: usize,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        self.devm_kmalloc(dev, n.checked_mul(size)?, gfp)
    }

    /// `devm_kcalloc`.
    #[track_caller]
    pub fn devm_kcalloc(
        &self,
        dev: DeviceHandle,
        n: usize,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        self.devm_kmalloc_array(dev, n, size, gfp | GfpFlags::__GFP_ZERO)
    }

    /// `devm_kfree`: frees a `devm_kmalloc` block of `dev` at once. Anything else (a pointer
    /// of another device, plain kmalloc memory) is a `WARN` and nothing is freed.
    #[track_caller]
    pub fn devm_kfree(&self, dev: DeviceHandle, p: *const u8) {
        if crate::slab::common::zero_or_null_ptr(p as usize) {
            return;
        }
        match self.remove_dr(dev, &Release::Kmalloc, &mut |d| ptr::eq(d, p)) {
            Some(n) => self.kfree(n.cast::<u8>()),
            None => self.warn(format_args!(
                "devm_kfree: {:#x} is not managed by this device",
                self.to_model(p as usize)
            )),
        }
    }

    /// `devm_krealloc`: resizes a `devm_kmalloc` block, keeping it managed (the node is
    /// replaced in place in the list). `new_size` 0 frees it; a null pointer allocates.
    #[track_caller]
    pub fn devm_krealloc(
        &self,
        dev: DeviceHandle,
        p: *mut u8,
        new_size: usize,
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        if new_size == 0 {
            self.devm_kfree(dev, p);
            return NonNull::new(crate::slab::common::ZERO_SIZE_PTR as *mut u8);
        }
        if crate::slab::common::zero_or_null_ptr(p as usize) {
            return self.devm_kmalloc(dev, new_size, gfp);
        }
        let total_new = data_offset::<P>().checked_add(new_size)?;
        // Find the old block first: only a managed block is looked into.
        let old = self
            .with_devres(dev, |d| {
                // SAFETY: `d` live, its devres lock held.
                unsafe { self.find_dr(d, &Release::Kmalloc, &mut |x| ptr::eq(x, p)) }
            })
            .ok()
            .flatten();
        let Some(old) = old else {
            self.warn(format_args!(
                "Memory chunk not managed or managed by a different device."
            ));
            return None;
        };
        let total_old = self.ksize(old.cast::<u8>());
        if total_new <= total_old {
            // It fits: Linux keeps the block as it is (size recorded at allocation).
            return NonNull::new(p);
        }
        let new = self.alloc_dr(Release::Kmalloc, new_size, gfp, "devm_krealloc_release")?;
        let replaced = self
            .with_devres(dev, |d| {
                // SAFETY: `d` live with its devres lock held; the old node is found again
                // (it may have been freed meanwhile) and replaced by our unlinked node.
                unsafe {
                    let old = self.find_dr(d, &Release::Kmalloc, &mut |x| ptr::eq(x, p))?;
                    self.devres_log(d, old, "REPLACE");
                    list::list_replace(&mut (*old).entry, &mut (*new).entry);
                    Some(old)
                }
            })
            .ok()
            .flatten();
        let Some(old) = replaced else {
            self.kfree(new.cast::<u8>());
            self.warn(format_args!(
                "Memory chunk not managed or managed by a different device."
            ));
            return None;
        };
        // The old node is off the list: ours. Copy its whole usable data (Linux copies
        // `ksize(old_dr) - offsetof(data)`), then free it.
        let keep = self.ksize(old.cast::<u8>()) - data_offset::<P>();
        // SAFETY: both blocks have at least `keep` data bytes (new is larger); distinct blocks.
        unsafe { ptr::copy_nonoverlapping(data_of(old), data_of(new), keep.min(new_size)) };
        self.kfree(old.cast::<u8>());
        NonNull::new(data_of(new))
    }

    /// `devm_kstrdup`: a managed NUL-terminated copy of `s`.
    #[track_caller]
    pub fn devm_kstrdup(&self, dev: DeviceHandle, s: &str, gfp: GfpFlags) -> Option<NonNull<u8>> {
        let p = self.devm_kmalloc(dev, s.len().checked_add(1)?, gfp)?;
        // SAFETY: `p` has `len + 1` bytes.
        unsafe {
            ptr::copy_nonoverlapping(s.as_ptr(), p.as_ptr(), s.len());
            *p.as_ptr().add(s.len()) = 0;
        }
        Some(p)
    }

    /// `devm_kmemdup`: a managed copy of `src`.
    #[track_caller]
    pub fn devm_kmemdup(
        &self,
        dev: DeviceHandle,
        src: &[u8],
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        let p = self.devm_kmalloc(dev, src.len(), gfp)?;
        if !src.is_empty() {
            // SAFETY: `p` has `src.len()` bytes, a fresh block distinct from `src`.
            unsafe { ptr::copy_nonoverlapping(src.as_ptr(), p.as_ptr(), src.len()) };
        }
        Some(p)
    }

    /// `devm_add_action`: `action(data)` runs when the driver is unbound. `name` is the
    /// action's name for the trace (Linux stringifies the function). The node's data is
    /// Linux's `struct action_devres` (two pointers: 16 bytes).
    pub fn devm_add_action(
        &self,
        dev: DeviceHandle,
        action: DevmAction<P>,
        data: usize,
        name: &'static str,
    ) -> Result<(), Errno> {
        let n = self
            .alloc_dr(
                Release::Action { f: action, data },
                16,
                GfpFlags::GFP_KERNEL,
                name,
            )
            .ok_or(Errno::ENOMEM)?;
        // SAFETY: `d` is live with its devres lock held; `n` is our unlinked node.
        let r = self.with_devres(dev, |d| unsafe { self.add_dr(d, n) });
        if r.is_err() {
            self.kfree(n.cast::<u8>());
        }
        r
    }

    /// `devm_add_action_or_reset`: as `devm_add_action`, but runs the action at once if it
    /// cannot be added.
    pub fn devm_add_action_or_reset(
        &self,
        dev: DeviceHandle,
        action: DevmAction<P>,
        data: usize,
        name: &'static str,
    ) -> Result<(), Errno> {
        let r = self.devm_add_action(dev, action, data, name);
        if r.is_err() {
            action(self, data);
        }
        r
    }

    /// `devm_remove_action`: forgets the action without running it (a `WARN` if there is
    /// none).
    #[track_caller]
    pub fn devm_remove_action(&self, dev: DeviceHandle, action: DevmAction<P>, data: usize) {
        match self.remove_dr(dev, &Release::Action { f: action, data }, &mut |_| true) {
            Some(n) => self.kfree(n.cast::<u8>()),
            None => self.warn(format_args!("devm_remove_action: no such action")),
        }
    }

    /// `devm_release_action`: runs the action now and forgets it (a `WARN` if there is
    /// none).
    #[track_caller]
    pub fn devm_release_action(&self, dev: DeviceHandle, action: DevmAction<P>, data: usize) {
        match self.remove_dr(dev, &Release::Action { f: action, data }, &mut |_| true) {
            Some(n) => {
                self.run_release(dev, n);
                self.kfree(n.cast::<u8>());
            }
            None => self.warn(format_args!("devm_release_action: no such action")),
        }
    }

    /// `devm_get_free_pages`: 2^order pages freed when the driver is unbound. The node's
    /// data is Linux's `struct pages_devres` (address and order: 16 bytes).
    pub fn devm_get_free_pages(
        &self,
        dev: DeviceHandle,
        gfp: GfpFlags,
        order: Order,
    ) -> Option<VirtAddr> {
        let addr = self.__get_free_pages(gfp, order)?;
        let Some(n) = self.alloc_dr(
            Release::Pages { addr, order },
            16,
            gfp,
            "devm_pages_release",
        ) else {
            self.free_pages(addr, order);
            return None;
        };
        // SAFETY: `d` is live with its devres lock held; `n` is our unlinked node.
        match self.with_devres(dev, |d| unsafe { self.add_dr(d, n) }) {
            Ok(()) => Some(addr),
            Err(_) => {
                self.kfree(n.cast::<u8>());
                self.free_pages(addr, order);
                None
            }
        }
    }

    /// `devm_free_pages`: frees pages from `devm_get_free_pages` at once (a `WARN` if they
    /// are not this device's).
    #[track_caller]
    pub fn devm_free_pages(&self, dev: DeviceHandle, addr: VirtAddr) {
        let probe = Release::Pages {
            addr,
            order: Order::ZERO,
        };
        match self.remove_dr(dev, &probe, &mut |_| true) {
            Some(n) => {
                self.run_release(dev, n);
                self.kfree(n.cast::<u8>());
            }
            None => self.warn(format_args!(
                "devm_free_pages: pages not managed by this device"
            )),
        }
    }

    /// How many managed resources (group markers included) the device has.
    pub fn devres_count(&self, dev: DeviceHandle) -> Result<usize, Errno> {
        // SAFETY: `d` live with its devres lock held; the list is stable.
        self.with_devres(dev, |d| unsafe { links(&(*d).devres_head).count() })
    }
}
