//! Coherent DMA memory (kernel/dma/direct.c `dma_direct_alloc`, kernel/dma/contiguous.c
//! `dma_alloc_contiguous`/`dma_free_contiguous`) on x86 without an IOMMU: the device's CMA
//! area (`cma_map=`, matched as the driver core matches names), else the default area
//! `reserved` (for more than a page), else the page allocator below the device's coherent
//! mask. kmem's devices have Linux's default `coherent_dma_mask`, `DMA_BIT_MASK(32)`, so the
//! page allocator is asked with `GFP_DMA32` and a CMA area above 4 GiB is not used. The
//! memory is zeroed; the `dma_addr_t` is the physical address.

use super::{names_match, DevLayer, DeviceHandle};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::page_alloc::Cma;
use crate::platform::Platform;
use crate::slab::common::get_order;
use crate::Order;

/// `CONFIG_CMA_ALIGNMENT`: the largest alignment order `cma_alloc_aligned` asks for.
const CMA_ALIGNMENT: u32 = 8;
/// `DMA_BIT_MASK(32)`, the default coherent mask.
const DMA_MASK_32: u64 = 0xffff_ffff;

/// A device name copied out from under the registry lock.
struct NameBuf {
    b: [u8; 64],
    len: usize,
}

impl core::fmt::Write for NameBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.b.len() - self.len);
        self.b[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl<P: Platform> DevLayer<P> {
    /// `dev_get_cma_area`: the area `cma_map=` binds to the device (`None` if none).
    ///
    /// # Errors
    /// `ENODEV` for a device that is not registered.
    pub fn dev_cma_area(&self, dev: DeviceHandle) -> Result<Option<Cma>, Errno> {
        let mut name = NameBuf { b: [0; 64], len: 0 };
        self.dev_name(dev, &mut name)?;
        let name = core::str::from_utf8(&name.b[..name.len]).unwrap_or("");
        Ok(self.cma_for_device(name, names_match))
    }

    /// `cma_alloc_aligned` from `cma` for `size` bytes, below the coherent mask.
    fn dma_cma_alloc(&self, cma: Cma, size: usize, gfp: GfpFlags) -> Option<PagePtr> {
        let count = size.div_ceil(PAGE_SIZE);
        let align = get_order(size).min(CMA_ALIGNMENT);
        let page = self.cma_alloc(cma, count, align, gfp.contains(GfpFlags::__GFP_NOWARN))?;
        let end = self.page_to_pfn(page).phys().as_u64() + size as u64 - 1;
        if end > DMA_MASK_32 {
            self.cma_release(cma, page, count);
            return None;
        }
        Some(page)
    }

    /// `dma_alloc_coherent`: `size` bytes of zeroed memory the device can reach; returns the
    /// kernel address and the DMA address.
    ///
    /// # Errors
    /// `ENODEV` for an unknown device, `EINVAL` for size 0, `ENOMEM` when nothing fits.
    pub fn dma_alloc_coherent(
        &self,
        dev: DeviceHandle,
        size: usize,
        gfp: GfpFlags,
    ) -> Result<(VirtAddr, PhysAddr), Errno> {
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let area = self.dev_cma_area(dev)?;
        // dma_alloc_contiguous: only where sleeping is allowed.
        let mut page = None;
        if gfp.allows_blocking() {
            if let Some(c) = area {
                page = self.dma_cma_alloc(c, size, gfp);
            } else if size > PAGE_SIZE {
                if let Some(c) = self.cma_find(crate::page_alloc::cma::CMA_DEFAULT_NAME) {
                    page = self.dma_cma_alloc(c, size, gfp);
                }
            }
        }
        let page = match page {
            Some(p) => p,
            None => {
                let order = self
                    .check_order(get_order(size), gfp)
                    .ok_or(Errno::ENOMEM)?;
                let g = gfp.without(GfpFlags::__GFP_HIGHMEM) | GfpFlags::__GFP_DMA32;
                self.alloc_pages(g, order).ok_or(Errno::ENOMEM)?
            }
        };
        let pa = self.page_to_pfn(page).phys();
        let va = self.page_address(page).ok_or(Errno::ENOMEM)?;
        self.memset_phys(pa, size);
        Ok((va, pa))
    }

    fn memset_phys(&self, pa: PhysAddr, size: usize) {
        // SAFETY: `[pa, pa + size)` was just allocated to the caller (a CMA run or a page
        // block of at least `size` bytes) and lies below phys_end.
        unsafe { core::ptr::write_bytes(self.phys_to_real(pa), 0, size) };
    }

    /// `dma_free_coherent`: frees memory from [`DevLayer::dma_alloc_coherent`].
    ///
    /// # Errors
    /// `ENODEV` for an unknown device, `EINVAL` for an address that is not a kernel address.
    pub fn dma_free_coherent(
        &self,
        dev: DeviceHandle,
        size: usize,
        vaddr: VirtAddr,
    ) -> Result<(), Errno> {
        let area = self.dev_cma_area(dev)?;
        let page = self.virt_to_page(vaddr).ok_or(Errno::EINVAL)?;
        let count = size.div_ceil(PAGE_SIZE);
        if let Some(c) = area {
            if self.cma_release(c, page, count) {
                return Ok(());
            }
        }
        if size > PAGE_SIZE {
            if let Some(c) = self.cma_find(crate::page_alloc::cma::CMA_DEFAULT_NAME) {
                if self.cma_release(c, page, count) {
                    return Ok(());
                }
            }
        }
        self.__free_pages(page, Order::new(get_order(size)));
        Ok(())
    }
}
