//! Model test of swap-out and swap-in against a reference: a fake address space (one
//! "PTE" per virtual page: none, present, or a swap entry) written and read at random on a
//! small machine with a swap file, with reclaim entered from the page allocator's slow path
//! (kswapd's wakeup and direct reclaim through the registered hook). Every byte read must be
//! the last byte written (the reference), and once the space is torn down every page, slot
//! and swap-cache entry must be back.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;

use kmem::arch::Arch;
use kmem::gfp::GfpFlags;
use kmem::mmzone::ZoneType;
use kmem::page_alloc::ReclaimHook;
use kmem::swap::entry::SwpEntry;
use kmem::swap::SwapState;
use kmem::vmalloc::VmLayer;
use kmem::vmscan::{LruList, ReclaimOps, VmscanState};
use kmem::{Order, PagePtr, PAGE_SIZE};
use kmem_hosted::{FileSwap, HostedPlatform};
use proptest::prelude::*;

type P = HostedPlatform;

#[derive(Clone, Copy, Debug)]
enum Pte {
    None,
    Present { page: PagePtr, young: bool },
    Swap(SwpEntry),
}

/// The fake mm: its PTEs and the rmap (page → virtual page).
struct Space<'a> {
    m: &'a common::M,
    swap: &'a SwapState<P>,
    vm: &'a VmscanState<P>,
    ptes: RefCell<Vec<Pte>>,
    rmap: RefCell<HashMap<PagePtr, usize>>,
}

impl Space<'_> {
    fn l(&self) -> &VmLayer<P> {
        self.m
    }
    #[allow(clippy::mut_from_ref)] // the page is not the space's memory
    fn bytes(&self, page: PagePtr) -> &mut [u8] {
        let va = self.m.page_address(page).unwrap();
        // SAFETY: the page is mapped by this fake space only and used single-threaded.
        unsafe { std::slice::from_raw_parts_mut(va.as_ptr::<u8>(), PAGE_SIZE) }
    }
    /// A user access to virtual page `i` (handle_mm_fault + the access).
    fn access(&self, i: usize, write: Option<u8>) -> u8 {
        let pte = self.ptes.borrow()[i];
        let page = match pte {
            Pte::Present { page, .. } => page,
            Pte::None => {
                let p = self
                    .m
                    .alloc_pages(
                        GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_ZERO,
                        Order::ZERO,
                    )
                    .expect("reclaim keeps memory available");
                self.vm.folio_add_lru(self.l(), p, true);
                p
            }
            Pte::Swap(e) => {
                // do_swap_page: readahead, then the PTE takes the reference.
                let p = self
                    .swap
                    .swapin_readahead(self.l(), e, GfpFlags::GFP_HIGHUSER_MOVABLE, &mut |np| {
                        self.vm.folio_add_lru(self.l(), np, true)
                    })
                    .expect("swap-in");
                self.swap.swap_free(self.l(), e);
                if write.is_some() {
                    // should_try_to_free_swap on a write fault: the copy in swap is stale.
                    self.swap.delete_from_swap_cache(self.l(), p);
                }
                p
            }
        };
        self.ptes.borrow_mut()[i] = Pte::Present { page, young: true };
        self.rmap.borrow_mut().insert(page, i);
        let b = self.bytes(page);
        if let Some(v) = write {
            b.fill(v);
            if self
                .m
                .page_ref(page)
                .unwrap()
                .test_flag(kmem::mm::mm_types::pg::SWAPCACHE)
            {
                self.swap.delete_from_swap_cache(self.l(), page);
            }
        }
        let v = b[0];
        assert!(
            b[PAGE_SIZE / 2] == v && b[PAGE_SIZE - 1] == v,
            "page {i} torn"
        );
        v
    }
    /// Whether every byte of virtual page `i` is `want` (after an access made it present).
    fn all_bytes(&self, i: usize, want: u8) -> bool {
        match self.ptes.borrow()[i] {
            Pte::Present { page, .. } => self.bytes(page).iter().all(|&b| b == want),
            _ => false,
        }
    }
    /// zap: every PTE goes.
    fn teardown(&self) {
        let ptes = std::mem::take(&mut *self.ptes.borrow_mut());
        for pte in ptes {
            match pte {
                Pte::None => {}
                Pte::Present { page, .. } => {
                    self.rmap.borrow_mut().remove(&page);
                    self.swap.free_swap_cache(self.l(), page);
                    self.vm.folio_put(self.l(), page);
                }
                Pte::Swap(e) => {
                    if let Some(p) = self.swap.free_swap_and_cache(self.l(), e) {
                        self.vm.folio_put(self.l(), p);
                    }
                }
            }
        }
    }
}

impl ReclaimOps for Space<'_> {
    fn referenced(&self, page: PagePtr) -> usize {
        let Some(&i) = self.rmap.borrow().get(&page) else {
            return 0;
        };
        let mut ptes = self.ptes.borrow_mut();
        match &mut ptes[i] {
            Pte::Present { young, .. } if *young => {
                *young = false;
                1
            }
            _ => 0,
        }
    }
    fn mapped(&self, page: PagePtr) -> bool {
        self.rmap.borrow().contains_key(&page)
    }
    fn try_to_unmap(&self, page: PagePtr) -> bool {
        let Some(i) = self.rmap.borrow_mut().remove(&page) else {
            return true;
        };
        let e = SwpEntry::from_val(self.m.page_ref(page).unwrap().private() as u64);
        self.swap.swap_duplicate(self.l(), e).unwrap();
        self.ptes.borrow_mut()[i] = Pte::Swap(e);
        // The PTE's page reference goes with it (isolation and swap cache still hold it).
        self.vm.folio_put(self.l(), page);
        true
    }
}

fn slab_kb(m: &common::M) -> usize {
    let info = common::proc(m, "meminfo");
    let line = info.lines().find(|l| l.starts_with("Slab:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Ctx<'a>(&'a Space<'a>);

/// # Safety
/// `ctx` must point at a live `Ctx` for as long as the hook is registered (the test registers it
/// for its duration).
unsafe fn wake(ctx: *const (), nid: usize, _order: u32, highest: ZoneType) {
    // SAFETY: registered below with a live Ctx for the duration of the test.
    let c = unsafe { &*ctx.cast::<Ctx<'_>>() };
    c.0.vm.wakeup_kswapd(c.0.l(), c.0.swap, c.0, nid, highest);
}
/// # Safety
/// `ctx` must point at a live `Ctx` for as long as the hook is registered (the test registers it
/// for its duration).
unsafe fn direct(ctx: *const (), gfp: GfpFlags, order: u32, nid: usize, nodemask: u64) -> usize {
    // SAFETY: `ctx` is the `Ctx` the test registered with this hook and keeps alive for the whole
    // test (this function's contract), so the shared reference is valid.
    let c = unsafe { &*ctx.cast::<Ctx<'_>>() };
    c.0.vm
        .try_to_free_pages(c.0.l(), c.0.swap, c.0, gfp, order, nid, nodemask)
}

fn run(ops: &[(usize, Option<u8>)], npages: usize, mem: u64) {
    let m = common::boot(Arch::X86_64, mem, 1);
    let swap = SwapState::<P>::new();
    let vm = Box::new(VmscanState::<P>::new());
    // SAFETY: boxed, never moves until dropped after the test.
    unsafe { vm.init() };
    let path = std::env::temp_dir().join(format!(
        "kmem-swap-model-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let f = FileSwap::create(&path, (npages as u64 + 64) * PAGE_SIZE as u64).unwrap();
    // A first swapon/swapoff makes the kernel page tables vmalloc needs for the map, which
    // stay (as in Linux).
    let warm = FileSwap::create(&path, (npages as u64 + 64) * PAGE_SIZE as u64).unwrap();
    swap.swapon(&m, path.to_str().unwrap(), warm, None).unwrap();
    swap.swapoff(&m, path.to_str().unwrap(), &mut |_| Ok(()))
        .unwrap();
    m.synchronize_rcu();
    let free0 = common::settle(&m);
    let slab0 = slab_kb(&m);
    swap.swapon(&m, path.to_str().unwrap(), f, None).unwrap();
    let space = Space {
        m: &m,
        swap: &swap,
        vm: &vm,
        ptes: RefCell::new(vec![Pte::None; npages]),
        rmap: RefCell::new(HashMap::new()),
    };
    let ctx = Ctx(&space);
    // SAFETY: `ctx` outlives the registration (removed below); the callbacks only allocate
    // swap-cache nodes without reclaim flags.
    unsafe {
        m.set_reclaim_hook(Some(ReclaimHook {
            ctx: (&ctx as *const Ctx<'_>).cast(),
            wake_kswapd: wake,
            direct,
        }))
    };
    let mut reference = vec![0u8; npages];
    for &(i, w) in ops {
        let i = i % npages;
        let got = space.access(i, w);
        match w {
            Some(v) => reference[i] = v,
            None => assert_eq!(got, reference[i], "page {i}"),
        }
    }
    // Every page read back.
    for (i, want) in reference.iter().enumerate() {
        assert_eq!(space.access(i, None), *want, "final read of page {i}");
        assert!(space.all_bytes(i, *want), "page {i}");
    }
    // SAFETY: removing the hook.
    unsafe { m.set_reclaim_hook(None) };
    if ops.len() >= npages {
        use kmem::mm::VmEvent::*;
        for ev in [PswpOut, PswpIn, PgScanKswapd, PgStealKswapd] {
            assert!(m.vm_event(ev) > 0, "{ev:?}");
        }
    }
    space.teardown();
    assert!(vm.lru_empty(), "{:?}", LruList::ALL.map(|l| vm.nr_pages(l)));
    assert_eq!(swap.total_swapcache_pages(), 0);
    assert_eq!(swap.si_swapinfo().free, swap.si_swapinfo().total);
    swap.swapoff(&m, path.to_str().unwrap(), &mut |_| Ok(()))
        .unwrap();
    // No page leaked, and the slab caches are back where they were. This is checked after
    // swapoff: while the area is on, its own objects live (swap_info in kmalloc-512, the
    // cluster array in kmalloc-96, the storage handle in kmalloc-16), and the swap cache's
    // XArray keeps the nodes it retired (kmalloc-1k, freed at its next write or at
    // swapoff's reclaim), spread over one to three order-1 slabs — the "up to 9 pages of
    // slab growth" an earlier version of this test allowed.
    m.synchronize_rcu();
    let free = common::settle(&m);
    assert_eq!(slab_kb(&m), slab0, "slab kB");
    assert_eq!(free, free0, "no page leaked");
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn touching_twice_memory_swaps_out_and_reads_back() {
    // 32 MiB machine, 12000 pages (47 MiB) of user memory written then read twice.
    let n = 12000;
    let mut ops: Vec<(usize, Option<u8>)> = (0..n)
        .map(|i| (i, Some((i * 31 % 251) as u8 + 1)))
        .collect();
    ops.extend((0..n).map(|i| (i, None)));
    ops.extend((0..n).rev().map(|i| (i, Some((i % 13) as u8 + 1))));
    run(&ops, n, 32 << 20);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn random_access_matches_reference(ops in prop::collection::vec((0usize..9000, prop::option::of(1u8..=255)), 1..6000)) {
        run(&ops, 9000, 32 << 20);
    }
}
