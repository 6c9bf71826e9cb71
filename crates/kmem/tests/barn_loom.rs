//! Model-checks SLUB's barn exchange (crates/kmem/src/slab/slub/barn.rs) with loom.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p kmem --test barn_loom --release`
//! (scripts/loom-test). The test compiles barn.rs itself (it depends only on `core`) around
//! loom's mutex, the stand-in for `barn->lock`, and lets CPUs (loom threads) trade their
//! sheaves with the barn as `alloc_from_pcs` and `free_to_pcs` do (`barn_replace_empty_sheaf`,
//! `barn_replace_full_sheaf` with its `-E2BIG`/`-ENOMEM` fallbacks, `barn_get_empty_sheaf`,
//! `barn_put_full_sheaf`, `barn_get_full_or_empty_sheaf` of a prefill). Under every
//! interleaving: no sheaf is lost or owned twice, the barn's counts match its lists, the full
//! list holds only full sheaves and the empty list only empty ones.
#![cfg(loom)]

#[path = "../src/slab/slub/barn.rs"]
#[allow(dead_code)]
mod barn;

use std::ptr::NonNull;

use barn::{BarnLists, ReplaceFull, SlabSheaf, MAX_FULL_SHEAVES};
use loom::sync::{Arc, Mutex};
use loom::thread;

const CAP: u32 = 4;

/// A sheaf pointer moved between threads (the model's sheaves are leaked boxes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Sh(NonNull<SlabSheaf>);
// SAFETY: exactly one owner uses a sheaf at a time (what the model checks).
unsafe impl Send for Sh {}

fn sheaf(id: usize, full: bool) -> Sh {
    let b = Box::new(SlabSheaf {
        next: std::ptr::null_mut(),
        rcu_aux: 0,
        cache: id,
        size: if full { CAP } else { 0 },
        capacity: CAP,
    });
    Sh(NonNull::from(Box::leak(b)))
}
fn size(s: Sh) -> u32 {
    // SAFETY: the caller owns `s`.
    unsafe { (*s.0.as_ptr()).size }
}
fn set_size(s: Sh, n: u32) {
    // SAFETY: the caller owns `s`.
    unsafe { (*s.0.as_ptr()).size = n }
}

/// One CPU: frees until its main sheaf is full and trades it (`__pcs_replace_full_main`),
/// then allocates until empty and trades (`__pcs_replace_empty_main`). Returns what it owns.
fn cpu(barn: Arc<Mutex<BarnLists>>, mut main: Sh, mut spare: Option<Sh>) -> Vec<Sh> {
    // free_to_pcs: main full.
    set_size(main, CAP);
    if spare.is_none() {
        let e = barn.lock().unwrap().get_empty();
        match e {
            Some(e) => {
                spare = Some(main);
                main = Sh(e);
            }
            // No empty sheaf to be had (kmem would allocate one): flush main in place.
            None => set_size(main, 0),
        }
    } else {
        // SAFETY: `main` is ours; on success the barn owns it.
        match unsafe { barn.lock().unwrap().replace_full(main.0) } {
            Ok(e) => main = Sh(e),
            Err(ReplaceFull::TooManyFull) | Err(ReplaceFull::NoEmpty) => {
                // Flush main in place (sheaf_flush_main).
                set_size(main, 0);
            }
        }
    }
    assert!(size(main) < CAP, "free path must end with room in main");
    // alloc_from_pcs: main empty.
    set_size(main, 0);
    // SAFETY: `main` is this thread's own sheaf (no barn list holds it, it was just emptied), so
    // `replace_empty` may take it; on success the barn owns it and we hold the full sheaf it gave.
    if let Some(f) = unsafe { barn.lock().unwrap().replace_empty(main.0) } {
        main = Sh(f);
        assert_eq!(size(main), CAP, "the barn gave a sheaf that is not full");
        set_size(main, CAP - 1);
    }
    // A prefill takes whatever the barn has, a return puts it back full.
    let got = barn.lock().unwrap().get_full_or_empty();
    if let Some(g) = got {
        set_size(Sh(g), CAP);
        let mut b = barn.lock().unwrap();
        if b.nr_full() < MAX_FULL_SHEAVES {
            // SAFETY: ours, full.
            unsafe { b.put_full(g) };
        } else {
            drop(b);
            set_size(Sh(g), 0);
            // SAFETY: ours, empty.
            unsafe { barn.lock().unwrap().put_empty(g) };
        }
    }
    let mut own = vec![main];
    own.extend(spare);
    own
}

fn check_barn(b: &BarnLists) -> Vec<Sh> {
    let mut all = Vec::new();
    let (mut nf, mut ne) = (0, 0);
    b.walk(|s, full| {
        let s = Sh(NonNull::new(s).unwrap());
        if full {
            nf += 1;
            assert_eq!(size(s), CAP, "a sheaf on the full list is not full");
        } else {
            ne += 1;
            assert_eq!(size(s), 0, "a sheaf on the empty list is not empty");
        }
        all.push(s);
    });
    assert_eq!((nf, ne), (b.nr_full(), b.nr_empty()));
    all
}

#[test]
fn barn_exchange_keeps_every_sheaf() {
    loom::model(|| {
        let barn = Arc::new(Mutex::new(BarnLists::new()));
        let init = [sheaf(0, true), sheaf(1, false)];
        {
            let mut b = barn.lock().unwrap();
            // SAFETY: fresh sheaves, given to the barn.
            unsafe {
                b.put_full(init[0].0);
                b.put_empty(init[1].0);
            }
        }
        let (a_main, b_main, b_spare) = (sheaf(2, false), sheaf(3, false), sheaf(4, true));
        let ba = barn.clone();
        let ta = thread::spawn(move || cpu(ba, a_main, None));
        let bb = barn.clone();
        let tb = thread::spawn(move || cpu(bb, b_main, Some(b_spare)));
        let mut owned = ta.join().unwrap();
        owned.extend(tb.join().unwrap());
        let b = barn.lock().unwrap();
        owned.extend(check_barn(&b));
        // Five sheaves went in; each is owned exactly once.
        let mut ids: Vec<usize> = owned
            .iter()
            // SAFETY: all the model's sheaves are live (leaked).
            .map(|s| unsafe { (*s.0.as_ptr()).cache })
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![0, 1, 2, 3, 4], "a sheaf was lost or owned twice");
    });
}

#[test]
fn replace_full_refuses_past_max_full() {
    loom::model(|| {
        let barn = Arc::new(Mutex::new(BarnLists::new()));
        {
            let mut b = barn.lock().unwrap();
            for i in 0..MAX_FULL_SHEAVES as usize {
                // SAFETY: fresh sheaves.
                unsafe { b.put_full(sheaf(i, true).0) };
            }
            // SAFETY: `sheaf(99, false)` is a fresh empty sheaf on no list, owned only by this
            // setup code, so its ownership can pass to the barn.
            unsafe { b.put_empty(sheaf(99, false).0) };
        }
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let b = barn.clone();
                thread::spawn(move || {
                    let mut own = Vec::new();
                    let s = sheaf(100 + i, true);
                    let mut g = b.lock().unwrap();
                    // SAFETY: ours; on success the barn owns it.
                    let r = unsafe { g.replace_full(s.0) };
                    assert!(g.nr_full() <= MAX_FULL_SHEAVES, "MAX_FULL_SHEAVES exceeded");
                    drop(g);
                    match r {
                        Ok(e) => own.push(Sh(e)),
                        Err(ReplaceFull::TooManyFull) => own.push(s),
                        Err(ReplaceFull::NoEmpty) => panic!("the barn had empty sheaves"),
                    }
                    // An allocating CPU trades an empty sheaf for a full one meanwhile.
                    let e = sheaf(200 + i, false);
                    // SAFETY: ours; on success the barn owns it.
                    let f = unsafe { b.lock().unwrap().replace_empty(e.0) };
                    own.push(Sh(f.expect("the barn had full sheaves")));
                    own
                })
            })
            .collect();
        let mut owned = Vec::new();
        for h in handles {
            owned.extend(h.join().unwrap());
        }
        let b = barn.lock().unwrap();
        assert!(b.nr_full() <= MAX_FULL_SHEAVES);
        owned.extend(check_barn(&b));
        // 10 + 1 + 2 + 2 sheaves, each owned once.
        let mut ids: Vec<usize> = owned
            .iter()
            // SAFETY: all the model's sheaves are live (leaked).
            .map(|s| unsafe { (*s.0.as_ptr()).cache })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), MAX_FULL_SHEAVES as usize + 5);
        assert_eq!(owned.len(), ids.len(), "a sheaf is owned twice");
    });
}
