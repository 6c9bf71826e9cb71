//! One page's migration (mm/migrate.c `migrate_folio_unmap` + `migrate_folio_move`, with
//! mm/rmap.c `try_to_migrate_one` and `remove_migration_pte`).

use core::ptr::NonNull;

use crate::errno::Errno;
use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::NodeStat;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::rmap::pte_phys;
use crate::swap::entry::MigrationEntry;
use crate::task::TaskLayer;

use super::TasklistHeld;
use crate::vma::{MmStruct, VmFlags, PAGE};

/// The flags `folio_migrate_flags` carries to the new page (`PG_swapcache` moves with the
/// swap-cache slot, `PG_lru` is set when the new page goes on its list).
const MIGRATE_FLAGS: u64 = pg::DIRTY
    | pg::REFERENCED
    | pg::ACTIVE
    | pg::UNEVICTABLE
    | pg::WORKINGSET
    | pg::SWAPBACKED
    | pg::UPTODATE;

/// What holds a page besides its PTEs and the isolation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// An anonymous page (maybe also in the swap cache).
    Anon,
    /// A shmem page-cache page of the object with this `i_mmap`.
    Shmem(NonNull<crate::vma::IMmap>),
    /// In the swap cache only (read ahead, mapped by nobody yet).
    SwapCacheOnly,
}

impl<P: Platform> TaskLayer<P> {
    /// What owns `page`; `None` for a page migration does not handle.
    pub(super) fn page_owner(&self, page: PagePtr) -> Option<Owner> {
        if self.page_is_anon(page) {
            return Some(Owner::Anon);
        }
        if let Some(im) = self.page_i_mmap(page) {
            return Some(Owner::Shmem(im));
        }
        if page.test_flag(pg::SWAPCACHE) && page.mapping() == 0 {
            return Some(Owner::SwapCacheOnly);
        }
        None
    }

    /// `rmap_walk`: `f(mm, addr, vm_flags)` for every place that may map `page`.
    ///
    /// # Safety
    /// `tasklist_lock` is held (the caller passes the proof).
    unsafe fn rmap_walk(
        &self,
        _t: &TasklistHeld,
        page: PagePtr,
        owner: Owner,
        f: &mut dyn FnMut(NonNull<MmStruct>, u64, VmFlags),
    ) {
        match owner {
            // SAFETY: the lock is held (caller's guarantee); `f` changes PTEs only.
            Owner::Anon => unsafe {
                self.rmap_walk_anon(page, |mm, vma, addr| f(mm, addr, vma.vm_flags))
            },
            Owner::Shmem(im) => {
                let idx = page.index() as u64;
                // SAFETY: `tasklist_lock` is held (the caller passes the proof), which is
                // `rmap_walk_file`'s contract; the shmem object outlives the VMAs on its `i_mmap`,
                // and `f` changes PTEs only.
                unsafe { self.rmap_walk_file(im, idx, &mut *f) }
            }
            Owner::SwapCacheOnly => {}
        }
    }

    /// The references a page of `owner` holds besides its mappers' and the isolation's:
    /// the page cache's or the swap cache's (`folio_expected_ref_count`).
    fn cache_refs(page: PagePtr, owner: Owner) -> i32 {
        match owner {
            Owner::Shmem(_) => 1,
            _ => i32::from(page.test_flag(pg::SWAPCACHE)),
        }
    }

    /// `try_to_migrate`: every PTE mapping `src` becomes a migration entry (writable, or
    /// readable and maybe exclusive, with the PTE's young and dirty bits); the mappers'
    /// references and mapcount are dropped. RSS counters stay (the entries still count).
    ///
    /// # Safety
    /// As [`Self::rmap_walk`]; `src` is isolated.
    unsafe fn try_to_migrate(&self, t: &TasklistHeld, src: PagePtr, owner: Owner) {
        let arch = self.arch();
        let pfn = self.page_to_pfn(src);
        let pa = pfn.phys();
        let mem = self.mem.pt_mem();
        // PageAnonExclusive: one mapper before the walk starts.
        let sole = owner == Owner::Anon && src.mapcount() == 1;
        let mut f = |mut mmp: NonNull<MmStruct>, addr: u64, _fl: VmFlags| {
            // SAFETY: live under tasklist_lock; nothing else borrows it during the walk.
            let mm = unsafe { mmp.as_mut() };
            let Some(pt) = mm.pgd.as_mut() else { return };
            let pte = pt.pte_get(mem, addr);
            if pte & PteFlags::PRESENT.0 == 0 || pte_phys(pt.format(), pte) != pa {
                return;
            }
            let writable = pte & PteFlags::RW.0 != 0;
            let dirty = pte & PteFlags::DIRTY.0 != 0;
            let me = MigrationEntry {
                pfn: pfn.as_u64(),
                writable,
                exclusive: !writable && sole,
                young: pte & PteFlags::ACCESSED.0 != 0,
                dirty,
            };
            if pt.pte_set(mem, addr, me.to_pte(arch)).is_err() {
                return;
            }
            if dirty {
                src.set_flag_bits(pg::DIRTY);
            }
            self.page_remove_rmap(src);
            let last = src.put_testzero();
            debug_assert!(!last, "the isolation's reference keeps the page");
        };
        // SAFETY: the caller's guarantee.
        unsafe { self.rmap_walk(t, src, owner, &mut f) };
    }

    /// `remove_migration_ptes(src, dst)`: every migration entry for `src` becomes a present
    /// PTE of `dst` with the remembered write, young and dirty bits; `dst` gets a reference
    /// and a mapper for each. `dst == src` undoes a failed migration.
    ///
    /// # Safety
    /// As [`Self::rmap_walk`]; `dst` has `src`'s `mapping` and `index` already.
    unsafe fn remove_migration_ptes(
        &self,
        t: &TasklistHeld,
        src: PagePtr,
        dst: PagePtr,
        owner: Owner,
    ) {
        let arch = self.arch();
        let src_pfn = self.page_to_pfn(src).as_u64();
        let dpa = self.page_to_pfn(dst).phys().as_u64();
        let mem = self.mem.pt_mem();
        let mut f = |mut mmp: NonNull<MmStruct>, addr: u64, fl: VmFlags| {
            // SAFETY: `mmp` is an address space reached by the rmap walk under `tasklist_lock`
            // (this function's contract), so it is live, and the walk hands `f` one mm at a time
            // with no other borrow of it.
            let mm = unsafe { mmp.as_mut() };
            let Some(pt) = mm.pgd.as_mut() else { return };
            let pte = pt.pte_get(mem, addr);
            let Some(me) = MigrationEntry::from_pte(arch, pte) else {
                return;
            };
            if me.pfn != src_pfn {
                return;
            }
            let ad = PteFlags::ACCESSED.0 | PteFlags::DIRTY.0;
            let mut new = self.mem.mk_pte(dpa, fl, me.writable) & !ad;
            if me.young {
                new |= PteFlags::ACCESSED.0;
            }
            if me.dirty {
                new |= PteFlags::DIRTY.0;
            }
            if pt.pte_set(mem, addr, new).is_err() {
                return;
            }
            dst.get();
            match owner {
                Owner::Anon if dst.mapcount() == 0 => {
                    dst.set_mapcount(1);
                    self.mod_page_node_stat(dst, NodeStat::AnonMapped, 1);
                }
                Owner::Anon => self.page_dup_rmap(dst),
                _ => self.page_add_file_rmap(dst),
            }
        };
        // SAFETY: the caller's guarantee; `dst` has `src`'s rmap identity.
        unsafe { self.rmap_walk(t, dst, owner, &mut f) };
    }

    /// `__folio_migrate_mapping` + `folio_migrate_flags` + the copy: `dst` takes `src`'s
    /// place in its cache (swap cache or shmem page cache), its data, flags, `mapping` and
    /// `index`. `Err(EAGAIN)` (nothing changed) when `src` has references nobody accounts
    /// for.
    fn move_to_new_page(&self, src: PagePtr, dst: PagePtr, owner: Owner) -> Result<(), Errno> {
        // folio_ref_count == folio_expected_ref_count + the isolation's.
        if src.refcount() != 1 + Self::cache_refs(src, owner) {
            return Err(Errno::EAGAIN);
        }
        // SAFETY: two distinct pages we hold, PAGE bytes each at their real addresses.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.mem.user_page_bytes(src),
                self.mem.user_page_bytes(dst),
                PAGE as usize,
            );
        }
        let swapcache = src.test_flag(pg::SWAPCACHE);
        match owner {
            Owner::Shmem(_) => {
                if !self.mem.shmem_replace_page(src, dst) {
                    return Err(Errno::EAGAIN);
                }
            }
            Owner::Anon | Owner::SwapCacheOnly => {
                if swapcache && !self.mem.mem.swap.swap_cache_replace(src, dst) {
                    return Err(Errno::EAGAIN);
                }
                dst.set_mapping(src.mapping());
                dst.set_index(src.index());
            }
        }
        // __folio_migrate_mapping: a page changing node takes its cache counters along.
        if src.nid() != dst.nid() {
            let moved = |w: NodeStat| {
                self.mod_page_node_stat(src, w, -1);
                self.mod_page_node_stat(dst, w, 1);
            };
            if matches!(owner, Owner::Shmem(_)) {
                moved(NodeStat::Shmem);
            }
            if swapcache {
                moved(NodeStat::SwapCached);
            }
        }
        let f = src.flags() & MIGRATE_FLAGS;
        dst.set_flag_bits(f);
        src.clear_flag_bits(MIGRATE_FLAGS);
        Ok(())
    }

    /// Migrates one isolated page to `dst` (`migrate_folio_unmap` + `migrate_folio_move`):
    /// `Ok` with `src` released (its isolation reference dropped, so it is freed) and `dst`
    /// mapped where `src` was and on its LRU list; `Err(EAGAIN)` with everything as before
    /// (`dst` untouched, for the caller to give back).
    ///
    /// # Safety
    /// `tasklist_lock` is held (the caller passes the proof); `src` is isolated; `dst` is a
    /// fresh page with one reference.
    pub(super) unsafe fn migrate_one(
        &self,
        t: &TasklistHeld,
        src: PagePtr,
        dst: PagePtr,
        owner: Owner,
    ) -> Result<(), Errno> {
        // Extra references (a GUP pin, a racing lookup): migration could not finish.
        let expected = 1 + Self::cache_refs(src, owner) + src.mapcount().max(0);
        if src.refcount() != expected {
            return Err(Errno::EAGAIN);
        }
        let was_mapped = src.mapcount() > 0;
        if was_mapped {
            // SAFETY: forwarded.
            unsafe { self.try_to_migrate(t, src, owner) };
        }
        if let Err(e) = self.move_to_new_page(src, dst, owner) {
            if was_mapped {
                // SAFETY: forwarded; `src` still has its own rmap identity.
                unsafe { self.remove_migration_ptes(t, src, src, owner) };
            }
            return Err(e);
        }
        if was_mapped {
            // SAFETY: forwarded; `dst` has `src`'s mapping and index now.
            unsafe { self.remove_migration_ptes(t, src, dst, owner) };
        }
        // The new page goes on the list its flags name; the allocation's reference goes.
        let l = &self.mem.km.vm;
        let swapbacked = dst.test_flag(pg::SWAPBACKED);
        self.mem.mem.lru.folio_add_lru(l, dst, swapbacked);
        self.mem.mem.lru.folio_put(l, dst);
        // migrate_folio_done: the old page is freed with the isolation's reference.
        src.set_mapping(0);
        src.set_index(0);
        src.set_mapcount(0);
        self.mem.mem.lru.folio_put(l, src);
        Ok(())
    }
}
