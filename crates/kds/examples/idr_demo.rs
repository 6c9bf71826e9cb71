//! IDR / IDA demo: handing out small integer ids (file descriptors, device minors), cyclic
//! ids (PIDs), the IDA's bitmap ids, and the old `idr_pre_get` / `idr_get_new` loop.
//!
//! Run with `cargo run -p kds --example idr_demo`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use kds::alloc::{Gfp, Global};
use kds::idr::{Ida, Idr};
use kds::xarray::xa_mk_value;
use kds::Error;

fn main() {
    let gfp = Gfp::GFP_KERNEL;

    // File descriptors: lowest free id, starting at 0.
    let fds = Idr::new_in(Global);
    for name in ["stdin", "stdout", "stderr", "log"] {
        let fd = fds
            .idr_alloc(Some(xa_mk_value(name.len())), 0, 0, gfp)
            .unwrap();
        println!("open {name:7} -> fd {fd}");
    }
    fds.idr_remove(1);
    let fd = fds.idr_alloc(Some(xa_mk_value(99)), 0, 0, gfp).unwrap();
    println!("after close(1), the next open gets fd {fd}");
    print!("open fds:");
    fds.idr_for_each(|id, _| {
        print!(" {id}");
        0
    });
    println!();
    println!(
        "replace of a closed fd: {:?}",
        fds.idr_replace(Some(xa_mk_value(1)), 42)
    );

    // PIDs: cyclic allocation in 300..32768, wrapping.
    let pids = Idr::new_in(Global);
    pids.idr_set_cursor(32766);
    for _ in 0..4 {
        let pid = pids
            .idr_alloc_cyclic(Some(xa_mk_value(0)), 300, 32768, gfp)
            .unwrap();
        print!("pid {pid}  ");
    }
    println!("(wrapped to the start of the range)");

    // Device minors from an IDA (bitmap leaves, no entries).
    let minors = Ida::new_in(Global);
    let ids: Vec<u32> = (0..5)
        .map(|_| minors.ida_alloc_range(16, 255, gfp).unwrap())
        .collect();
    println!("IDA minors: {ids:?}");
    minors.ida_free(18);
    minors.ida_free(18); // a double free warns and changes nothing
    println!(
        "after freeing 18 twice: next minor {}, warnings {}",
        minors.ida_alloc_range(16, 255, gfp).unwrap(),
        minors.warnings()
    );

    // The old API: preload, then allocate without memory; -EAGAIN means "preload again".
    let old = Idr::new_in(Global);
    let mut eagain = 0;
    for i in 0..1000 {
        let mut id = 0;
        loop {
            match old.idr_get_new(Some(xa_mk_value(i)), &mut id) {
                Ok(()) => break,
                Err(Error::EAGAIN) => {
                    eagain += 1;
                    assert!(old.idr_pre_get(gfp), "out of memory");
                }
                Err(e) => panic!("idr_get_new: {e}"),
            }
        }
        assert_eq!(id as usize, i);
    }
    println!("old API: 1000 ids with {eagain} EAGAIN round trip(s) to idr_pre_get");
}
