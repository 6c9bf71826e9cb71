//! Writers: the locked side of the tree (`mtree_lock` .. `mtree_unlock`), the store that
//! rebuilds the spanned part of the tree level by level, node reserve and retirement.

use super::node::*;
use super::read::{Lvl, Path};
use super::*;
use crate::sync::AtomicPtr;

/// The tree's writer lock held (or, from [`MapleTree::lock_mut`], the caller's exclusive
/// borrow): offers the `__mtree_*` operations and writable [`MaState`]s. Not `Send`/`Sync`:
/// everything done through one guard happens on its thread, one call at a time.
pub struct MtLockGuard<'a, A: NodeAlloc> {
    pub(super) mt: &'a MapleTree<A>,
    pub(super) locked: bool,
    pub(super) _not_sync: PhantomData<*const ()>,
}

impl<A: NodeAlloc> Drop for MtLockGuard<'_, A> {
    fn drop(&mut self) {
        if self.locked {
            self.mt.lock.store(false, Release);
        }
    }
}

impl<'a, A: NodeAlloc> MtLockGuard<'a, A> {
    /// The writer state.
    #[allow(clippy::mut_from_ref)]
    fn w(&self) -> &mut Writer {
        // SAFETY: the lock (or `&mut MapleTree`) is held by this guard, which is neither Send
        // nor Sync, and no caller keeps the reference across another call to `w`.
        unsafe { &mut *self.mt.w.get() }
    }

    /// A writable `MA_STATE(mas, mt, index, last)`.
    pub fn mas<'g>(&'g self, index: usize, last: usize) -> MaState<'g, A> {
        MaState::new_write(self, index, last)
    }

    /// Returns the tree.
    pub fn tree(&self) -> &'a MapleTree<A> {
        self.mt
    }

    /// Nodes a single store may need: up to three new nodes per level, a new root, and the
    /// level a root split adds.
    pub(super) fn nodes_needed(&self) -> usize {
        3 * (self.mt.height() + 2) + 1
    }

    /// Number of nodes in the reserve.
    pub fn reserved_nodes(&self) -> usize {
        self.w().nr_reserve
    }

    /// Number of nodes waiting for readers to leave.
    pub fn retired_nodes(&self) -> usize {
        let mut n = self.w().retired;
        let mut c = 0;
        while !n.is_null() {
            c += 1;
            // SAFETY: retired nodes stay allocated until freed under this lock.
            n = unsafe { (*n).next_free.load(Relaxed) };
        }
        c
    }

    /// Fills the reserve up to `want` nodes (`mas_node_count_gfp`).
    pub(super) fn fill_reserve(&self, want: usize, gfp: Gfp) -> Result<()> {
        while self.w().nr_reserve < want {
            let n = alloc_block(&self.mt.alloc, gfp).ok_or(Error::ENOMEM)?;
            let w = self.w();
            // SAFETY: a fresh private block; only `next_free` is written before it is used.
            unsafe { ptr::addr_of_mut!((*n).next_free).write(AtomicPtr::new(w.reserve)) };
            w.reserve = n;
            w.nr_reserve += 1;
        }
        Ok(())
    }

    /// Frees the whole reserve (`mas_destroy`).
    pub(super) fn drain_reserve(&self) {
        let w = self.w();
        let list = core::mem::replace(&mut w.reserve, ptr::null_mut());
        w.nr_reserve = 0;
        // SAFETY: reserve blocks are private to the list.
        unsafe { free_list(&self.mt.alloc, list) };
    }

    fn take_node(&self) -> *mut Node {
        let w = self.w();
        let n = w.reserve;
        assert!(
            !n.is_null(),
            "maple tree: node reserve exhausted inside a store"
        );
        // SAFETY: reserve blocks are linked through `next_free`.
        w.reserve = unsafe { (*n).next_free.load(Relaxed) };
        w.nr_reserve -= 1;
        n
    }

    fn retire(&self, n: *mut Node) {
        let w = self.w();
        // SAFETY: `n` was just unlinked under the lock; it is ours to queue.
        unsafe { (*n).next_free.store(w.retired, Relaxed) };
        w.retired = n;
    }

    /// End of a write operation: frees retired nodes if no reader can see them (rcu.rs).
    pub(super) fn finish(&self) {
        if self.w().retired.is_null() || !self.mt.rs.quiescent() {
            return;
        }
        let list = core::mem::replace(&mut self.w().retired, ptr::null_mut());
        // SAFETY: every node on the list was unlinked before the quiescent check.
        unsafe { free_list(&self.mt.alloc, list) };
    }

    /// `__mtree_store_range` / `mas_store_gfp`: stores and returns the first entry that was in
    /// `index..=last`.
    ///
    /// # Errors
    /// `EINVAL`, `ENOMEM` (the tree is unchanged).
    pub fn store_range(
        &self,
        index: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        let word = entry_word(entry)?;
        if index > last {
            return Err(Error::EINVAL);
        }
        self.fill_reserve(self.nodes_needed(), gfp)?;
        let old = self.do_store(index, last, word);
        self.finish();
        Ok(to_entry(old))
    }

    /// `__mtree_insert_range`.
    ///
    /// # Errors
    /// `EEXIST`, `EINVAL`, `ENOMEM`.
    pub fn insert_range(
        &self,
        first: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<()> {
        entry_word(entry)?;
        if first > last {
            return Err(Error::EINVAL);
        }
        let r = self.mt.range_at(first);
        if r.entry != 0 || r.last < last {
            return Err(Error::EEXIST);
        }
        self.store_range(first, last, entry, gfp).map(|_| ())
    }

    /// `__mtree_erase`: erases the range containing `index`; returns its entry. Allocates
    /// with `GFP_KERNEL` (Linux retries with it in `mas_nomem`); if even that fails the entry
    /// stays and `None` is returned — use [`MtLockGuard::erase_gfp`] to see the error.
    pub fn erase(&self, index: usize) -> Option<XaEntry> {
        self.erase_gfp(index, Gfp::GFP_KERNEL).ok().flatten()
    }

    /// Erases the range containing `index`, allocating with `gfp`; returns its entry.
    ///
    /// # Errors
    /// `ENOMEM` (the tree is unchanged).
    pub fn erase_gfp(&self, index: usize, gfp: Gfp) -> Result<Option<XaEntry>> {
        let r = self.mt.range_at(index);
        if r.entry == 0 {
            return Ok(None);
        }
        self.fill_reserve(self.nodes_needed(), gfp)?;
        self.do_store(r.first, r.last, 0);
        self.finish();
        Ok(to_entry(r.entry))
    }

    /// `mtree_alloc_range` / `mtree_alloc_rrange` under the lock.
    pub(super) fn alloc_range(
        &self,
        entry: Option<XaEntry>,
        size: usize,
        min: usize,
        max: usize,
        gfp: Gfp,
        rev: bool,
    ) -> Result<usize> {
        if !self.mt.is_alloc() || is_reserved(entry) {
            return Err(Error::EINVAL);
        }
        entry_word(entry)?;
        let mut mas = self.mas(0, 0);
        if rev {
            mas.empty_area_rev(min, max, size)?;
        } else {
            mas.empty_area(min, max, size)?;
        }
        let start = mas.index;
        self.store_range(start, mas.last, entry, gfp)?;
        Ok(start)
    }

    /// `__mt_destroy`: empties the tree.
    pub fn destroy(&self) {
        let root = self.mt.root.swap(0, Release) as *mut Node;
        self.mt.height.store(0, Relaxed);
        if !root.is_null() {
            self.retire_all(root);
        }
        self.finish();
    }

    fn retire_all(&self, n: *mut Node) {
        // SAFETY: unlinked under the lock; nodes stay allocated until `finish`.
        let node = unsafe { &*n };
        if !node.ty.is_leaf() {
            for i in 0..=node.end() {
                self.retire_all(node.slot(i) as *mut Node);
            }
        }
        self.retire(n);
    }

    /// The first entry in `index..=last` (what `mas_store` returns).
    fn first_entry(&self, index: usize, last: usize) -> usize {
        let r = self.mt.range_at(index);
        if r.entry != 0 || r.last >= last {
            r.entry
        } else {
            self.mt.range_at(r.last + 1).entry
        }
    }

    /// Widens a `NULL` store over the `NULL` ranges it touches or borders
    /// (`mas_wr_extend_null` / `mas_extend_spanning_null`), so no two `NULL`s end up adjacent.
    fn extend_null(&self, index: usize, last: usize) -> (usize, usize) {
        let (mut a, mut b) = (index, last);
        let r1 = self.mt.range_at(a);
        if r1.entry == 0 {
            a = r1.first;
        } else if r1.first == a && a > 0 {
            let r0 = self.mt.range_at(a - 1);
            if r0.entry == 0 {
                a = r0.first;
            }
        }
        let r2 = self.mt.range_at(b);
        if r2.entry == 0 {
            b = r2.last;
        } else if r2.last == b && b < usize::MAX {
            let r3 = self.mt.range_at(b + 1);
            if r3.entry == 0 {
                b = r3.last;
            }
        }
        (a, b)
    }

    /// The store proper (`mas_wr_store_entry`); the reserve holds enough nodes.
    pub(super) fn do_store(&self, index: usize, last: usize, word: usize) -> usize {
        let old = self.first_entry(index, last);
        if self.mt.root.load(Relaxed) == 0 {
            if word != 0 {
                self.store_empty(index, last, word);
            }
            return old;
        }
        if word != 0 && self.exact_fit(index, last, word) {
            return old;
        }
        let (a, b) = if word == 0 {
            self.extend_null(index, last)
        } else {
            (index, last)
        };
        let mut lp: Path = [Lvl::EMPTY; MAPLE_HEIGHT_MAX];
        let mut rp: Path = [Lvl::EMPTY; MAPLE_HEIGHT_MAX];
        let h = self.mt.walk_path(a, &mut lp);
        self.mt.walk_path(b, &mut rp);
        let (ll, rl) = (lp[h - 1], rp[h - 1]);
        let mut c = Buf::new();
        // SAFETY: path nodes are live under the lock.
        let (ln, rn) = unsafe { (&*ll.node, &*rl.node) };
        if ll.off > 0 {
            ln.items_into(0, ll.off - 1, ll.max, &mut c);
        }
        if ln.slot_min(ll.off, ll.min) < a {
            c.push(Item {
                last: a - 1,
                slot: ln.slot(ll.off),
                gap: 0,
            });
        }
        c.push(Item {
            last: b,
            slot: word,
            gap: 0,
        });
        let e = rn.pivot(rl.off, rl.max);
        if e > b {
            c.push(Item {
                last: e,
                slot: rn.slot(rl.off),
                gap: 0,
            });
        }
        if rl.off < rn.end() {
            rn.items_into(rl.off + 1, rn.end(), rl.max, &mut c);
        }
        self.rebuild(&lp, &rp, h, c, ll.min);
        old
    }

    /// `wr_exact_fit`: a non-`NULL` entry replacing a non-`NULL` range with the same bounds
    /// is one atomic slot store in the leaf (no pivot or gap changes; readers see the old or
    /// the new entry). Returns false if the store is not of that kind.
    fn exact_fit(&self, index: usize, last: usize, word: usize) -> bool {
        let mut path: Path = [Lvl::EMPTY; MAPLE_HEIGHT_MAX];
        let h = self.mt.walk_path(index, &mut path);
        let l = path[h - 1];
        // SAFETY: path nodes are live under the lock.
        let leaf = unsafe { &*l.node };
        if leaf.slot_min(l.off, l.min) != index
            || leaf.pivot(l.off, l.max) != last
            || leaf.slot(l.off) == 0
        {
            return false;
        }
        leaf.slots[l.off].store(word, Release);
        true
    }

    /// The first store into an empty tree: one leaf of up to three ranges.
    fn store_empty(&self, index: usize, last: usize, word: usize) {
        let mut c = Buf::new();
        if index > 0 {
            c.push(Item {
                last: index - 1,
                slot: 0,
                gap: 0,
            });
        }
        c.push(Item {
            last,
            slot: word,
            gap: 0,
        });
        if last < usize::MAX {
            c.push(Item {
                last: usize::MAX,
                slot: 0,
                gap: 0,
            });
        }
        let n = self.take_node();
        // SAFETY: a private reserve block.
        unsafe { fill_node(n, MapleType::Leaf64, c.as_slice(), 0) };
        self.mt.height.store(1, Relaxed);
        self.mt.root.store(n as usize, Release);
    }

    /// Cuts `c` into nodes of type `ty` (`mab_mas_cp` after the split point choice): as many
    /// as needed, sizes as even as possible. Returns their parent items.
    fn build_nodes(&self, c: &Buf, ty: MapleType, min: usize) -> Buf {
        let n = c.len;
        let k = n.div_ceil(ty.slots());
        let (base, extra) = (n / k, n % k);
        let mut out = Buf::new();
        let mut start = 0;
        let mut lo = min;
        for j in 0..k {
            let len = base + usize::from(j < extra);
            let chunk = &c.items[start..start + len];
            let node = self.take_node();
            // SAFETY: a private reserve block, published later by the caller.
            let gap = unsafe { fill_node(node, ty, chunk, lo) };
            let last = chunk[len - 1].last;
            out.push(Item {
                last,
                slot: node as usize,
                gap,
            });
            lo = last.wrapping_add(1);
            start += len;
        }
        out
    }

    /// Rebuilds the tree above new leaf content `c` (the spanning store, split and rebalance
    /// of the module documentation). `lp`/`rp` are the paths to the first and last index
    /// written, `h` the height.
    fn rebuild(&self, lp: &Path, rp: &Path, h: usize, mut c: Buf, mut cmin: usize) {
        let int_ty = if self.mt.is_alloc() {
            MapleType::Arange64
        } else {
            MapleType::Range64
        };
        let mut ty = MapleType::Leaf64;
        let mut d = h - 1;
        loop {
            if d == 0 {
                self.new_root(c, ty, cmin, h);
                self.retire_span(lp[0].node, 0, true, true, lp, rp, h);
                return;
            }
            let (pl, pr) = (lp[d - 1], rp[d - 1]);
            let (mut lo, mut ro) = (pl.off, pr.off);
            let k = c.len.div_ceil(ty.slots());
            if c.len <= ty.min_slots() {
                self.pull_sibling(&mut c, &mut cmin, (pl, pr), (&mut lo, &mut ro), usize::MAX);
            } else if k >= 2 {
                // `mas_push_data`: rather than adding a node, share the k nodes with a sibling
                // that has room (keeping two slots of slack per pair, as Linux does).
                let room = k * ty.slots() - k;
                self.pull_sibling(&mut c, &mut cmin, (pl, pr), (&mut lo, &mut ro), room);
            }
            let new = self.build_nodes(&c, ty, cmin);
            if pl.node == pr.node && lo == ro && new.len == 1 {
                // SAFETY: the parent is live under the lock; one pointer store publishes the
                // new subtree, whose range equals the old child's.
                unsafe { (*pl.node).slots[lo].store(new.items[0].slot, Release) };
                if self.mt.is_alloc() {
                    self.refresh_gaps(lp, d - 1, new.items[0].gap);
                }
                self.retire_span(lp[d].node, d, true, true, lp, rp, h);
                return;
            }
            let mut pc = Buf::new();
            // SAFETY: path nodes are live under the lock.
            let (pn, qn) = unsafe { (&*pl.node, &*pr.node) };
            if lo > 0 {
                pn.items_into(0, lo - 1, pl.max, &mut pc);
            }
            for it in new.as_slice() {
                pc.push(*it);
            }
            if ro < qn.end() {
                qn.items_into(ro + 1, qn.end(), pr.max, &mut pc);
            }
            c = pc;
            cmin = pl.min;
            ty = int_ty;
            d -= 1;
        }
    }

    /// Rebalance: a new level takes in the sibling left of the span (or right of it) from
    /// the same parent if the total stays within `limit` slots; the sibling node is retired,
    /// its slots reused. Underfull levels pass no limit; overfull ones the room of the nodes
    /// they need anyway (`mas_push_data`).
    fn pull_sibling(
        &self,
        c: &mut Buf,
        cmin: &mut usize,
        (pl, pr): (Lvl, Lvl),
        (lo, ro): (&mut usize, &mut usize),
        limit: usize,
    ) {
        // SAFETY: path nodes and their children are live under the lock.
        unsafe {
            let (pn, qn) = (&*pl.node, &*pr.node);
            let fits = |sib: usize| c.len + (*(sib as *const Node)).end() < limit;
            if *lo > 0 && fits(pn.slot(*lo - 1)) {
                let i = *lo - 1;
                let sib = pn.slot(i) as *mut Node;
                let smin = pn.slot_min(i, pl.min);
                let mut nc = Buf::new();
                (*sib).items_into(0, (*sib).end(), pn.pivot(i, pl.max), &mut nc);
                for it in c.as_slice() {
                    nc.push(*it);
                }
                *c = nc;
                *cmin = smin;
                *lo = i;
                self.retire(sib);
            } else if *ro < qn.end() && fits(qn.slot(*ro + 1)) {
                let i = *ro + 1;
                let sib = qn.slot(i) as *mut Node;
                (*sib).items_into(0, (*sib).end(), qn.pivot(i, pr.max), c);
                *ro = i;
                self.retire(sib);
            }
        }
    }

    /// Installs the root built from root-level content `c` of type `ty`; `h` is the old
    /// height. Splits add a level; single-child roots are removed.
    fn new_root(&self, c: Buf, ty: MapleType, cmin: usize, h: usize) {
        if ty.is_leaf() && c.len == 1 && c.items[0].slot == 0 {
            self.mt.root.store(0, Release);
            self.mt.height.store(0, Relaxed);
            return;
        }
        let mut height = h;
        let mut root = if ty.is_leaf() || c.len > 1 {
            let new = self.build_nodes(&c, ty, cmin);
            if new.len == 1 {
                new.items[0].slot
            } else {
                let int_ty = if self.mt.is_alloc() {
                    MapleType::Arange64
                } else {
                    MapleType::Range64
                };
                let n = self.take_node();
                // SAFETY: a private reserve block.
                unsafe { fill_node(n, int_ty, new.as_slice(), 0) };
                height += 1;
                n as usize
            }
        } else {
            height -= 1;
            c.items[0].slot
        };
        // Collapse single-child internal roots (the tree shrinks).
        loop {
            // SAFETY: `root` is a node built or kept by this store, live under the lock.
            let n = unsafe { &*(root as *const Node) };
            if n.ty.is_leaf() || n.end() > 0 {
                break;
            }
            let child = n.slot(0);
            self.retire(root as *mut Node);
            root = child;
            height -= 1;
        }
        self.mt.height.store(height as u8, Relaxed);
        self.mt.root.store(root, Release);
    }

    /// Refreshes the gaps above an in-place child swap at `lp[t]` whose subtree's largest gap
    /// is now `gap`.
    fn refresh_gaps(&self, lp: &Path, t: usize, mut gap: usize) {
        let mut t = t as isize;
        while t >= 0 {
            let l = lp[t as usize];
            // SAFETY: path nodes are live under the lock; gaps are atomics readers may load.
            let n = unsafe { &*l.node };
            n.gaps[l.off].store(gap, Relaxed);
            gap = n.refresh_gap_meta();
            t -= 1;
        }
    }

    /// Retires the old nodes of the span below `n` (at depth `t`): on the left edge only
    /// children from the left path's offset, on the right edge up to the right path's.
    #[allow(clippy::too_many_arguments)]
    fn retire_span(
        &self,
        n: *mut Node,
        t: usize,
        le: bool,
        re: bool,
        lp: &Path,
        rp: &Path,
        h: usize,
    ) {
        if t + 1 < h {
            // SAFETY: old nodes stay allocated until `finish`.
            let node = unsafe { &*n };
            let lo = if le { lp[t].off } else { 0 };
            let hi = if re { rp[t].off } else { node.end() };
            for i in lo..=hi {
                let child = node.slot(i) as *mut Node;
                self.retire_span(child, t + 1, le && i == lo, re && i == hi, lp, rp, h);
            }
        }
        self.retire(n);
    }
}
