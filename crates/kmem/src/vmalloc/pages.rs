//! The physical pages behind the vmalloc space, for page-owner maps (`kmem map`): every page
//! mapped by a `vmalloc` area and the page arrays (`vm_struct.pages`) that list them.

use kds::rbtree::{rb_first, rb_next};

use crate::mm::mm_types::PagePtr;
use crate::platform::Platform;

use super::{VmLayer, VmapArea, VM_ALLOC, VM_MAP_RAM_AREA, VM_UNINITIALIZED};

impl<P: Platform> VmLayer<P> {
    /// Calls `f` with every page a busy `vmalloc` area maps and every page of the areas' page
    /// arrays, under `vmap_area_lock`. `f` must not call into the vmalloc layer.
    pub fn for_each_vmalloc_page(&self, f: &mut dyn FnMut(PagePtr)) {
        if self.kernel_layout().is_none() {
            return;
        }
        // Lock order: vmap_area_lock (rank 2), nothing under it; docs/LOCKING.md.
        let a = self.vm().areas.lock();
        // SAFETY: the busy tree holds valid areas under the lock; an area's `pages` array has
        // `nr_pages` entries written before the area lost `VM_UNINITIALIZED`, and it lives in
        // a buddy block of `pages_order` that the area owns until it is freed (under the lock).
        unsafe {
            let mut n = rb_first(&a.busy_root);
            while !n.is_null() {
                let v = &*kds::container_of!(n, VmapArea, rb);
                n = rb_next(n);
                if v.flags & (VM_UNINITIALIZED | VM_MAP_RAM_AREA) != 0
                    || v.flags & VM_ALLOC == 0
                    || v.pages.is_null()
                {
                    continue;
                }
                for i in 0..v.nr_pages {
                    f(*v.pages.add(i));
                }
                if let Some(arr) = self.virt_to_page(crate::addr::VirtAddr::new(v.pages as usize)) {
                    for i in 0..1usize << v.pages_order {
                        f(arr.add(i));
                    }
                }
            }
        }
    }
}
