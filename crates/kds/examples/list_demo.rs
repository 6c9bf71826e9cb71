//! A run queue with `<linux/list.h>`: tasks linked through an embedded list node, walked,
//! sorted, rotated and split — once with the safe `List`, once with the raw Linux-named API.
//!
//! Run with `cargo run -p kds --example list_demo`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use kds::list::{self, Link, List, ListHead};

/// A task with an intrusive link for the safe list.
struct Task {
    pid: u32,
    prio: i32,
    name: &'static str,
    run_list: Link,
}

kds::define_list_adapter!(RunList = Task { run_list });

/// The same task shape for the raw layer (a bare `list_head`).
#[repr(C)]
struct RawTask {
    pid: u32,
    prio: i32,
    node: ListHead,
}

fn show(title: &str, q: &List<'_, RunList>) {
    let v: Vec<String> = q
        .iter()
        .map(|t| format!("{}({}:{})", t.name, t.pid, t.prio))
        .collect();
    println!("{title:<28} [{}]", v.join(" -> "));
}

fn main() {
    let tasks = [
        Task {
            pid: 1,
            prio: 120,
            name: "init",
            run_list: Link::new(),
        },
        Task {
            pid: 42,
            prio: 100,
            name: "kswapd0",
            run_list: Link::new(),
        },
        Task {
            pid: 77,
            prio: 139,
            name: "backup",
            run_list: Link::new(),
        },
        Task {
            pid: 99,
            prio: 100,
            name: "kworker",
            run_list: Link::new(),
        },
        Task {
            pid: 123,
            prio: 120,
            name: "bash",
            run_list: Link::new(),
        },
    ];

    println!("== safe layer ==");
    let mut rq = List::<RunList>::new();
    for t in &tasks {
        rq.push_back(t).expect("not yet queued");
    }
    show("queued (list_add_tail):", &rq);
    match rq.push_back(&tasks[0]) {
        Err(kds::list::AlreadyLinked(t)) => {
            println!(
                "{:<28} {} is already on a list: rejected",
                "double insert:", t.name
            )
        }
        Ok(()) => unreachable!(),
    }
    rq.rotate_left();
    show("after list_rotate_left:", &rq);
    rq.sort_by(|a, b| a.prio.cmp(&b.prio));
    show("list_sort by prio (stable):", &rq);

    // Move every low-priority task to a second queue with a cursor.
    let mut idle = List::<RunList>::new();
    {
        let mut c = rq.cursor_front_mut();
        while let Some(t) = c.current() {
            if t.prio > 130 {
                let t = c.remove_current().expect("at an item");
                idle.push_back(t).expect("just unlinked");
            } else {
                c.move_next();
            }
        }
    }
    show("run queue:", &rq);
    show("idle queue:", &idle);
    rq.append(&mut idle);
    show("after list_splice_tail_init:", &rq);
    let next = rq.pop_front().expect("non-empty");
    println!("{:<28} {} (pid {})", "picked next:", next.name, next.pid);

    println!("\n== raw layer (kernel style) ==");
    let mut head = ListHead::new();
    let mut raw: Vec<RawTask> = [(10, 5), (11, 1), (12, 5), (13, 3)]
        .iter()
        .map(|&(pid, prio)| RawTask {
            pid,
            prio,
            node: ListHead::new(),
        })
        .collect();
    // SAFETY: `head` and `raw` live until the end of main and do not move while linked (the
    // Vec is not resized).
    unsafe {
        ListHead::init(&mut head);
        for t in raw.iter_mut() {
            list::list_add_tail(&mut t.node, &mut head);
        }
        list::list_sort(&mut head, |a, b| {
            (*kds::container_of!(a, RawTask, node)).prio
                - (*kds::container_of!(b, RawTask, node)).prio
        });
        print!("list_for_each_entry:");
        for t in kds::list_for_each_entry!(&head, RawTask, node) {
            print!(" pid {} (prio {})", (*t).pid, (*t).prio);
        }
        println!();
        // list_for_each_entry_safe: remove the prio-5 tasks while walking.
        for t in kds::list_for_each_entry!(safe & head, RawTask, node) {
            if (*t).prio == 5 {
                list::list_del(core::ptr::addr_of_mut!((*t).node));
            }
        }
        let first = kds::list_first_entry!(&head, RawTask, node);
        println!(
            "after deleting prio 5: {} left, first is pid {}",
            list::list_count_nodes(&head),
            (*first).pid
        );
    }
}
