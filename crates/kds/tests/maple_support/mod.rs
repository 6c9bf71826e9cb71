//! Test support for the maple tree tests: the reference model, non-empty ranges by first
//! index (first -> (last, raw entry)), shared by maple_tree.rs and maple_tree_model.rs. Each
//! test adds the operations it needs in its own `impl Model`.
#![allow(dead_code)]

extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec;

use kds::xarray::{XaEntry, XA_ZERO_ENTRY};

/// Non-empty ranges by first index: first -> (last, raw entry).
#[derive(Default, Clone, Debug)]
pub struct Model(pub BTreeMap<usize, (usize, usize)>);

impl Model {
    /// The range holding index `i`: (first, last, raw entry).
    pub fn range_at(&self, i: usize) -> Option<(usize, usize, usize)> {
        let (&f, &(l, e)) = self.0.range(..=i).next_back()?;
        (l >= i).then_some((f, l, e))
    }
    /// `mtree_load`: reserved (zero) entries read as empty.
    pub fn load(&self, i: usize) -> Option<XaEntry> {
        self.range_at(i)
            .map(|r| r.2)
            .filter(|&e| e != XA_ZERO_ENTRY.raw())
            .and_then(XaEntry::from_raw)
    }
    /// `mtree_store_range(a, b, e)`: overlapping ranges are cut; `e == 0` erases.
    pub fn store(&mut self, a: usize, b: usize, e: usize) {
        let over: Vec<usize> = self
            .0
            .range(..=b)
            .filter(|(_, &(l, _))| l >= a)
            .map(|(&f, _)| f)
            .collect();
        for f in over {
            let (l, x) = self.0.remove(&f).unwrap();
            if f < a {
                self.0.insert(f, (a - 1, x));
            }
            if l > b {
                self.0.insert(b + 1, (l, x));
            }
        }
        if e != 0 {
            self.0.insert(a, (b, e));
        }
    }
}
