//! The invariant checker behind [`XArray::check`].

use crate::alloc::NodeAlloc;
use crate::sync::Ordering::*;

use super::entry::*;
use super::node::*;
use super::*;

impl<'a, A: NodeAlloc> XaLockGuard<'a, A> {
    /// Checks the invariants; returns the number of nodes.
    pub(super) fn check(&self, free_on_present: bool) -> core::result::Result<usize, &'static str> {
        let head = self.head();
        if !is_node(head) {
            return Ok(0);
        }
        let top = to_node(head);
        // SAFETY: live tree nodes under the lock.
        unsafe {
            if !(*top).parent.load(Relaxed).is_null() {
                return Err("top node has a parent");
            }
            let n = &*top;
            if n.count() == 0 {
                return Err("empty top node");
            }
            let e0 = n.slots[0].load(Relaxed);
            // A lone entry in slot 0 of a leaf top may stay: one that looks like a node never
            // goes in the head, nor does `XA_ZERO_ENTRY` (`xas_store`'s `allow_root`), and
            // replacing that reserved entry does not shrink (as in Linux).
            if n.count() == 1 && e0 != 0 && n.shift != 0 && is_node(e0) {
                return Err("tree not shrunk");
            }
            let hm = self.xa.head_marks.load(Relaxed);
            for m in 1..XA_MAX_MARKS {
                if (n.marks[m].load(Relaxed) != 0) != (hm & (1 << m) != 0) {
                    return Err("head mark differs from top node marks");
                }
            }
            self.check_node(top, free_on_present)
        }
    }

    /// # Safety
    /// `node` is a live tree node; the lock is held.
    unsafe fn check_node(
        &self,
        node: *mut XaNode,
        free_on_present: bool,
    ) -> core::result::Result<usize, &'static str> {
        // SAFETY: the caller guarantees a live node.
        let n = unsafe { &*node };
        let mut nodes = 1;
        let mut count = 0;
        let nr = n.nr_slots();
        for off in 0..XA_CHUNK_SIZE {
            let e = n.slots[off].load(Relaxed);
            if off >= nr {
                if e != 0 {
                    return Err("entry beyond the index space");
                }
                continue;
            }
            if e != 0 {
                count += 1;
            }
            if is_sibling(e) {
                let c = to_sibling(e);
                if c >= off {
                    return Err("sibling points forward");
                }
                for between in c + 1..off {
                    if n.slots[between].load(Relaxed) != e {
                        return Err("sibling run broken");
                    }
                }
                let ce = n.slots[c].load(Relaxed);
                if ce == 0 || is_sibling(ce) || is_child(ce, n.shift) {
                    return Err("sibling of a non-entry");
                }
                for m in 0..XA_MAX_MARKS {
                    if n.get_mark(off, XaMark(m as u8)) {
                        return Err("mark on a sibling slot");
                    }
                }
                continue;
            }
            if is_child(e, n.shift) {
                let c = to_node(e);
                // SAFETY: a live child.
                let cn = unsafe { &*c };
                if cn.parent.load(Relaxed) != node || cn.offset.load(Relaxed) as usize != off {
                    return Err("bad parent/offset");
                }
                if cn.shift + XA_CHUNK_SHIFT as u8 != n.shift {
                    return Err("bad child shift");
                }
                if cn.count() == 0 {
                    return Err("empty child node");
                }
                for m in 0..XA_MAX_MARKS {
                    let any = cn.marks[m].load(Relaxed) & mask(cn.nr_slots()) != 0;
                    if any != n.get_mark(off, XaMark(m as u8)) {
                        return Err("parent mark differs from child marks");
                    }
                }
                // SAFETY: a live child.
                nodes += unsafe { self.check_node(c, free_on_present)? };
                continue;
            }
            // An entry slot (or empty).
            for m in 0..XA_MAX_MARKS {
                let set = n.get_mark(off, XaMark(m as u8));
                if m == 0 && self.track_free() {
                    if set != (e == 0) && !(free_on_present && set) {
                        return Err("XA_FREE_MARK differs from emptiness");
                    }
                } else if set && e == 0 {
                    return Err("mark on an empty slot");
                }
            }
        }
        if count != n.count() {
            return Err("count differs from occupied slots");
        }
        let values = (0..nr)
            .filter(|&off| {
                let e = n.slots[off].load(Relaxed);
                let canon = if is_sibling(e) {
                    n.slots[to_sibling(e)].load(Relaxed)
                } else {
                    e
                };
                is_value(canon)
            })
            .count();
        if values != n.nr_values() {
            return Err("nr_values differs from value slots");
        }
        Ok(nodes)
    }
}

const fn mask(nr: usize) -> u64 {
    if nr >= 64 {
        u64::MAX
    } else {
        (1u64 << nr) - 1
    }
}
