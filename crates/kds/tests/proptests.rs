//! Property tests: random operation sequences on kds structures checked step by step against
//! plain std models (`VecDeque`, `Vec`, `HashMap`).
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use core::pin::pin;
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};

// --- safe List vs VecDeque -------------------------------------------------------------------

mod list_model {
    use super::*;
    use kds::list::Link;

    pub struct Item {
        pub id: usize,
        pub key: u8,
        pub link: Link,
    }
    kds::define_list_adapter!(pub ItemLink = Item { link });

    #[derive(Debug, Clone)]
    pub enum Op {
        PushFront(usize),
        PushBack(usize),
        PopFront,
        PopBack,
        Remove(usize),
        CursorInsertAfter(usize, usize),
        CursorRemove(usize),
        RotateLeft,
        Sort,
        Clear,
    }

    pub fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..24usize).prop_map(Op::PushFront),
            4 => (0..24usize).prop_map(Op::PushBack),
            2 => Just(Op::PopFront),
            2 => Just(Op::PopBack),
            2 => (0..24usize).prop_map(Op::Remove),
            2 => (0..30usize, 0..24usize).prop_map(|(a, b)| Op::CursorInsertAfter(a, b)),
            2 => (0..30usize).prop_map(Op::CursorRemove),
            1 => Just(Op::RotateLeft),
            1 => Just(Op::Sort),
            1 => Just(Op::Clear),
        ]
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn list_matches_vecdeque(keys in prop::collection::vec(0u8..6, 24), ops in prop::collection::vec(list_model::op(), 1..120)) {
        use list_model::*;
        use kds::list::List;
        let items: Vec<Item> = keys.iter().enumerate().map(|(id, &key)| Item { id, key, link: kds::list::Link::new() }).collect();
        let mut list = List::<ItemLink>::new();
        let mut model: VecDeque<usize> = VecDeque::new();
        for op in ops {
            match op {
                Op::PushFront(i) => {
                    let r = list.push_front(&items[i]);
                    if model.contains(&i) { prop_assert!(r.is_err()); } else { prop_assert!(r.is_ok()); model.push_front(i); }
                }
                Op::PushBack(i) => {
                    let r = list.push_back(&items[i]);
                    if model.contains(&i) { prop_assert!(r.is_err()); } else { prop_assert!(r.is_ok()); model.push_back(i); }
                }
                Op::PopFront => prop_assert_eq!(list.pop_front().map(|x| x.id), model.pop_front()),
                Op::PopBack => prop_assert_eq!(list.pop_back().map(|x| x.id), model.pop_back()),
                Op::Remove(i) => {
                    let r = list.remove(&items[i]).map(|x| x.id);
                    match model.iter().position(|&x| x == i) {
                        Some(pos) => { model.remove(pos); prop_assert_eq!(r, Some(i)); }
                        None => prop_assert_eq!(r, None),
                    }
                }
                Op::CursorInsertAfter(steps, i) => {
                    // Walk `steps` positions (wrapping through the ghost) and insert after.
                    let mut c = list.cursor_front_mut();
                    let ring = model.len() + 1;
                    for _ in 0..steps { c.move_next(); }
                    let pos = steps % ring; // index in model, == len means ghost
                    let r = c.insert_after(&items[i]);
                    if model.contains(&i) { prop_assert!(r.is_err()); }
                    else {
                        prop_assert!(r.is_ok());
                        if pos == model.len() { model.push_front(i); } else { model.insert(pos + 1, i); }
                    }
                }
                Op::CursorRemove(steps) => {
                    let mut c = list.cursor_back_mut();
                    let ring = model.len() + 1;
                    for _ in 0..steps { c.move_prev(); }
                    // Back cursor at index len-1; stepping back wraps through the ghost (index len).
                    let pos = (model.len() + ring * 64 - 1 - steps) % ring;
                    let got = c.remove_current().map(|x| x.id);
                    if pos == model.len() { prop_assert_eq!(got, None); }
                    else { prop_assert_eq!(got, model.remove(pos)); }
                }
                Op::RotateLeft => { list.rotate_left(); if let Some(x) = model.pop_front() { model.push_back(x); } }
                Op::Sort => {
                    list.sort_by(|a, b| a.key.cmp(&b.key));
                    model.make_contiguous().sort_by_key(|&i| items[i].key); // stable
                }
                Op::Clear => { list.clear(); model.clear(); }
            }
            let fwd: Vec<usize> = list.iter().map(|x| x.id).collect();
            prop_assert_eq!(&fwd, &model.iter().copied().collect::<Vec<_>>());
            let back: Vec<usize> = list.iter().rev().map(|x| x.id).collect();
            prop_assert_eq!(back, model.iter().rev().copied().collect::<Vec<_>>());
            prop_assert_eq!(list.len(), model.len());
            prop_assert_eq!(list.front().map(|x| x.id), model.front().copied());
            prop_assert_eq!(list.back().map(|x| x.id), model.back().copied());
            for it in &items { prop_assert_eq!(it.link.is_linked(), model.contains(&it.id)); }
        }
    }

    #[test]
    fn raw_list_sort_is_a_stable_sort(keys in prop::collection::vec(0i32..20, 0..700)) {
        use kds::list::*;
        #[repr(C)]
        struct E { key: i32, serial: usize, link: ListHead }
        let mut es: Vec<E> = keys.iter().enumerate().map(|(serial, &key)| E { key, serial, link: ListHead::new() }).collect();
        let mut head = ListHead::new();
        // SAFETY: the heads and nodes are owned by this test case, initialised before they are linked and not moved while linked.
        let got: Vec<(i32, usize)> = unsafe {
            ListHead::init(&mut head);
            for e in es.iter_mut() { list_add_tail(&mut e.link, &mut head); }
            list_sort(&mut head, |a, b| (*kds::container_of!(a, E, link)).key - (*kds::container_of!(b, E, link)).key);
            // prev links are consistent too
            let back: Vec<usize> = kds::list_for_each_entry!(reverse &head, E, link).map(|e| (*e).serial).collect();
            let fwd: Vec<(i32, usize)> = kds::list_for_each_entry!(&head, E, link).map(|e| ((*e).key, (*e).serial)).collect();
            assert_eq!(back, fwd.iter().rev().map(|x| x.1).collect::<Vec<_>>());
            fwd
        };
        let mut model: Vec<(i32, usize)> = keys.iter().enumerate().map(|(s, &k)| (k, s)).collect();
        model.sort_by_key(|x| x.0);
        prop_assert_eq!(got, model);
    }
}

// --- kfifo vs VecDeque -----------------------------------------------------------------------

#[derive(Debug, Clone)]
enum FifoOp {
    In(usize),
    Out(usize),
    Peek(usize),
    Put,
    Get,
    Skip(usize),
    Reset,
}

fn fifo_op() -> impl Strategy<Value = FifoOp> {
    prop_oneof![
        4 => (0..40usize).prop_map(FifoOp::In),
        4 => (0..40usize).prop_map(FifoOp::Out),
        1 => (0..40usize).prop_map(FifoOp::Peek),
        3 => Just(FifoOp::Put),
        3 => Just(FifoOp::Get),
        1 => (0..10usize).prop_map(FifoOp::Skip),
        1 => Just(FifoOp::Reset),
    ]
}

#[derive(Debug, Clone)]
enum RecOp {
    In(usize),
    Out(usize),
    Peek(usize),
    Skip,
}

fn rec_op() -> impl Strategy<Value = RecOp> {
    prop_oneof![
        3 => (0..70usize).prop_map(RecOp::In),
        2 => (0..70usize).prop_map(RecOp::Out),
        1 => (0..70usize).prop_map(RecOp::Peek),
        1 => Just(RecOp::Skip),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn kfifo_matches_vecdeque(ops in prop::collection::vec(fifo_op(), 1..200)) {
        use kds::kfifo::Kfifo;
        let mut f = Kfifo::<u16, 32>::new();
        let mut model: VecDeque<u16> = VecDeque::new();
        let mut next = 0u16;
        for op in ops {
            match op {
                FifoOp::In(n) => {
                    let data: Vec<u16> = (0..n as u16).map(|i| next.wrapping_add(i)).collect();
                    let k = f.push_slice(&data);
                    prop_assert_eq!(k, n.min(32 - model.len()));
                    model.extend(&data[..k]);
                    next = next.wrapping_add(k as u16);
                }
                FifoOp::Out(n) | FifoOp::Peek(n) => {
                    let mut buf = vec![0u16; n];
                    let peek = matches!(op, FifoOp::Peek(_));
                    let k = if peek { f.peek_slice(&mut buf) } else { f.pop_slice(&mut buf) };
                    let want: Vec<u16> = if peek { model.iter().take(n).copied().collect() } else { model.drain(..n.min(model.len())).collect() };
                    prop_assert_eq!(&buf[..k], &want[..]);
                }
                FifoOp::Put => {
                    let ok = f.put(next);
                    prop_assert_eq!(ok, model.len() < 32);
                    if ok { model.push_back(next); next = next.wrapping_add(1); }
                }
                FifoOp::Get => prop_assert_eq!(f.get(), model.pop_front()),
                FifoOp::Skip(n) => { f.skip(n); model.drain(..n.min(model.len())); }
                FifoOp::Reset => { f.reset(); model.clear(); }
            }
            prop_assert_eq!(f.len(), model.len());
            prop_assert_eq!(f.avail(), 32 - model.len());
            prop_assert_eq!(f.is_full(), model.len() == 32);
            prop_assert_eq!(f.peek(), model.front().copied());
        }
    }

    #[test]
    fn record_kfifo_matches_model(ops in prop::collection::vec(rec_op(), 1..150)) {
        use kds::kfifo::KfifoRecInline;
        let mut f = KfifoRecInline::<128, 1>::new();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let used = |m: &VecDeque<Vec<u8>>| m.iter().map(|r| r.len() + 1).sum::<usize>();
        let mut tag = 0u8;
        for op in ops {
            match op {
                RecOp::In(n) => {
                    tag = tag.wrapping_add(1);
                    let rec: Vec<u8> = (0..n).map(|i| tag ^ i as u8).collect();
                    let k = f.push(&rec);
                    if n < 128 - used(&model) { prop_assert_eq!(k, n); model.push_back(rec); } else { prop_assert_eq!(k, 0); }
                }
                RecOp::Out(n) | RecOp::Peek(n) => {
                    let mut buf = vec![0u8; n];
                    let peek = matches!(op, RecOp::Peek(_));
                    let k = if peek { f.peek(&mut buf) } else { f.pop(&mut buf) };
                    let front = if peek { model.front().cloned() } else { model.pop_front() };
                    match front {
                        Some(r) => { let m = n.min(r.len()); prop_assert_eq!(k, m); prop_assert_eq!(&buf[..k], &r[..m]); }
                        None => prop_assert_eq!(k, 0),
                    }
                }
                RecOp::Skip => { f.skip(); model.pop_front(); }
            }
            prop_assert_eq!(f.len(), used(&model));
            prop_assert_eq!(f.peek_len(), model.front().map_or(0, |r| r.len()));
            prop_assert_eq!(f.is_empty(), model.is_empty());
        }
    }
}

// --- safe HashTable vs HashMap ---------------------------------------------------------------

mod ht_model {
    use kds::hashtable::HLink;
    pub struct Obj {
        pub id: usize,
        pub key: u64,
        pub node: HLink,
    }
    kds::define_hash_adapter!(pub ByKey = Obj { node } key u64 => |o| o.key);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hashtable_matches_hashmap(keys in prop::collection::vec(0u64..12, 32), ops in prop::collection::vec((0u8..4, 0usize..32), 1..150)) {
        use ht_model::*;
        use kds::hashtable::{HLink, HashTable};
        let objs: Vec<Obj> = keys.iter().enumerate().map(|(id, &key)| Obj { id, key: key * 0x9E37_79B9, node: HLink::new() }).collect();
        let mut t = pin!(HashTable::<ByKey, 8>::new());
        // key -> ids, most recently added last
        let mut model: HashMap<u64, Vec<usize>> = HashMap::new();
        for (kind, i) in ops {
            let o = &objs[i];
            let present = model.get(&o.key).is_some_and(|v| v.contains(&i));
            match kind {
                0 | 1 => {
                    let r = t.as_mut().add(o);
                    prop_assert_eq!(r.is_ok(), !present);
                    if !present { model.entry(o.key).or_default().push(i); }
                }
                2 => {
                    prop_assert_eq!(t.as_mut().remove(o), present);
                    if present { model.get_mut(&o.key).unwrap().retain(|&x| x != i); }
                }
                _ => {
                    let mut removed = Vec::new();
                    t.as_mut().remove_key(o.key, |x| removed.push(x.id));
                    removed.sort();
                    let mut want = model.remove(&o.key).unwrap_or_default();
                    want.sort();
                    prop_assert_eq!(removed, want);
                }
            }
            for (k, ids) in &model {
                prop_assert_eq!(t.find(*k).map(|x| x.id), ids.last().copied());
                let mut all: Vec<usize> = t.possible(*k).filter(|x| x.key == *k).map(|x| x.id).collect();
                all.sort();
                let mut want = ids.clone();
                want.sort();
                prop_assert_eq!(all, want);
            }
            let total: usize = model.values().map(|v| v.len()).sum();
            prop_assert_eq!(t.iter().count(), total);
            prop_assert_eq!(t.is_empty(), total == 0);
        }
    }
}

// --- plist vs a stably sorted Vec ------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn plist_matches_sorted_vec(prios in prop::collection::vec(-5i32..5, 40), ops in prop::collection::vec((0u8..3, 0usize..40), 1..200)) {
        use kds::plist::*;
        let mut head = PlistHead::new();
        let mut nodes: Vec<PlistNode> = prios.iter().map(|&p| PlistNode::new(p)).collect();
        let base = nodes.as_ptr();
        let mut model: Vec<usize> = Vec::new(); // node indices in list order
        // SAFETY: the heads and nodes are owned by this test case, initialised before they are linked and not moved while linked.
        unsafe {
            plist_head_init(&mut head);
            for (i, n) in nodes.iter_mut().enumerate() { plist_node_init(n, prios[i]); }
            for (kind, i) in ops {
                let n: *mut PlistNode = &mut nodes[i];
                let on = model.contains(&i);
                match kind {
                    0 if !on => {
                        plist_add(n, &mut head);
                        // after every node with prio <= this one
                        let pos = model.iter().position(|&j| prios[j] > prios[i]).unwrap_or(model.len());
                        model.insert(pos, i);
                    }
                    1 if on => {
                        plist_del(n, &mut head);
                        model.retain(|&j| j != i);
                    }
                    2 if on => {
                        plist_requeue(n, &mut head);
                        let pos = model.iter().position(|&j| j == i).unwrap();
                        model.remove(pos);
                        let end = model.iter().position(|&j| prios[j] > prios[i]).unwrap_or(model.len());
                        model.insert(end, i);
                    }
                    _ => {}
                }
                prop_assert_eq!(plist_check_head(&head, Some(model.len())), Ok(()));
                let got: Vec<usize> = plist_for_each(&head).map(|p| p.offset_from(base) as usize).collect();
                prop_assert_eq!(&got, &model);
            }
        }
    }
}

// --- kfifo split handles vs VecDeque (one thread, arbitrary interleaving) ---------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn kfifo_split_handles_match_vecdeque(ops in prop::collection::vec((0u8..5, 0usize..12), 1..300)) {
        use kds::kfifo::Kfifo;
        let mut f = Kfifo::<u32, 8>::new();
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut next = 0u32;
        {
            let (mut p, mut c) = f.split();
            for (kind, n) in ops {
                match kind {
                    0 => {
                        let ok = p.put(next);
                        prop_assert_eq!(ok, model.len() < 8);
                        if ok { model.push_back(next); next += 1; }
                    }
                    1 => {
                        let data: Vec<u32> = (next..next + n as u32).collect();
                        let k = p.push_slice(&data);
                        prop_assert_eq!(k, n.min(8 - model.len()));
                        model.extend(&data[..k]);
                        next += k as u32;
                    }
                    2 => prop_assert_eq!(c.get(), model.pop_front()),
                    3 => {
                        let mut buf = vec![0u32; n];
                        let k = c.pop_slice(&mut buf);
                        let want: Vec<u32> = model.drain(..n.min(model.len())).collect();
                        prop_assert_eq!(&buf[..k], &want[..]);
                    }
                    _ => {
                        prop_assert_eq!(c.peek(), model.front().copied());
                        prop_assert_eq!(c.len(), model.len());
                        prop_assert_eq!(p.avail(), 8 - model.len());
                    }
                }
            }
        }
        prop_assert_eq!(f.len(), model.len());
    }
}

// --- safe PList vs a stably sorted Vec --------------------------------------------------------

mod plist_model {
    use kds::plist::PLink;
    pub struct W {
        pub id: usize,
        pub link: PLink,
    }
    kds::define_plist_adapter!(pub WLink = W { link });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn safe_plist_matches_sorted_vec(ops in prop::collection::vec((0u8..4, 0usize..24, -4i32..4), 1..200)) {
        use kds::plist::{PLink, PList};
        use plist_model::*;
        let ws: Vec<W> = (0..24).map(|id| W { id, link: PLink::new() }).collect();
        let mut q = pin!(PList::<WLink>::new());
        let mut model: Vec<(i32, usize)> = Vec::new();
        for (kind, i, prio) in ops {
            let pos = model.iter().position(|&(_, j)| j == i);
            match kind {
                0 => {
                    let r = q.as_mut().add(&ws[i], prio);
                    prop_assert_eq!(r.is_ok(), pos.is_none());
                    if pos.is_none() {
                        let at = model.iter().position(|&(p, _)| p > prio).unwrap_or(model.len());
                        model.insert(at, (prio, i));
                    }
                }
                1 => {
                    prop_assert_eq!(q.as_mut().remove(&ws[i]), pos.is_some());
                    if let Some(k) = pos { model.remove(k); }
                }
                2 => {
                    prop_assert_eq!(q.as_mut().requeue(&ws[i]), pos.is_some());
                    if let Some(k) = pos {
                        let e = model.remove(k);
                        let at = model.iter().position(|&(p, _)| p > e.0).unwrap_or(model.len());
                        model.insert(at, e);
                    }
                }
                _ => {
                    let got = q.as_mut().pop_first().map(|w| w.id);
                    let want = if model.is_empty() { None } else { Some(model.remove(0).1) };
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(q.check(), Ok(()));
            let got: Vec<(i32, usize)> = q.iter().map(|(p, w)| (p, w.id)).collect();
            prop_assert_eq!(&got, &model);
            prop_assert_eq!(q.first().map(|w| w.id), model.first().map(|e| e.1));
            prop_assert_eq!(q.last().map(|w| w.id), model.last().map(|e| e.1));
            for w in &ws { prop_assert_eq!(w.link.is_linked(), model.iter().any(|e| e.1 == w.id)); }
        }
    }
}

// --- safe HList vs VecDeque -------------------------------------------------------------------

mod hlist_model {
    use kds::hlist::HLink;
    pub struct O {
        pub id: usize,
        pub node: HLink,
    }
    kds::define_hlist_adapter!(pub ONode = O { node });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn safe_hlist_matches_vecdeque(ops in prop::collection::vec((0u8..5, 0usize..16, 0usize..16), 1..150)) {
        use kds::hlist::{HLink, HList};
        use hlist_model::*;
        let os: Vec<O> = (0..16).map(|id| O { id, node: HLink::new() }).collect();
        let mut l = pin!(HList::<ONode>::new());
        let mut model: VecDeque<usize> = VecDeque::new();
        for (kind, i, j) in ops {
            let has_i = model.contains(&i);
            let pos_j = model.iter().position(|&x| x == j);
            match kind {
                0 => {
                    prop_assert_eq!(l.as_mut().push_front(&os[i]).is_ok(), !has_i);
                    if !has_i { model.push_front(i); }
                }
                1 => {
                    let ok = !has_i && pos_j.is_some();
                    prop_assert_eq!(l.as_mut().add_behind(&os[j], &os[i]).is_ok(), ok);
                    if ok { model.insert(pos_j.unwrap() + 1, i); }
                }
                2 => {
                    let ok = !has_i && pos_j.is_some();
                    prop_assert_eq!(l.as_mut().add_before(&os[j], &os[i]).is_ok(), ok);
                    if ok { model.insert(pos_j.unwrap(), i); }
                }
                3 => {
                    prop_assert_eq!(l.as_mut().remove(&os[i]), has_i);
                    model.retain(|&x| x != i);
                }
                _ => prop_assert_eq!(l.as_mut().pop_front().map(|o| o.id), model.pop_front()),
            }
            let got: Vec<usize> = l.iter().map(|o| o.id).collect();
            prop_assert_eq!(&got, &model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(l.is_empty(), model.is_empty());
            for o in &os { prop_assert_eq!(o.node.is_hashed(), model.contains(&o.id)); }
        }
    }
}
