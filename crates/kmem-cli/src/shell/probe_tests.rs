//! Drivers written in the shell: probe and remove blocks, devm actions, deferred probe, and
//! what goes wrong inside them (issue 16).

use std::sync::atomic::{AtomicBool, Ordering};

use super::device_tests::shell_mem;
use super::{run_script, Shell};

fn shell(cmdline: &str) -> Shell {
    shell_mem(128 << 20, cmdline)
}

/// Runs `src` as a script named `t` (lines grouped into chunks, as `kmem shell FILE` does);
/// returns (stdout, stderr).
fn run(sh: &mut Shell, src: &str) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run_script(sh, &mut src.as_bytes(), "t", false, &mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Free pages once every cache is shrunk and the CPU's page lists drained: equal before and
/// after a scenario when nothing leaked (as kmem's tests/devres.rs counts).
fn settle(sh: &Shell) -> usize {
    let m = &sh.k.m;
    let mut caches = Vec::new();
    m.for_each_cache(&mut |c, _| caches.push(c));
    for c in caches {
        m.kmem_cache_shrink(c);
    }
    m.drain_local_pages();
    m.nr_free_pages()
        + m.arch()
            .zones()
            .iter()
            .map(|z| m.pcp_pages(*z))
            .sum::<usize>()
}

/// The `DEVRES` lines of `out` without the node addresses: `ADD name (size)`.
fn devres(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(": DEVRES "))
        .map(|(_, rest)| {
            let mut w = rest.split_whitespace();
            let op = w.next().unwrap_or("");
            let _addr = w.next();
            format!("{op} {}", w.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// The node addresses of the `DEVRES` lines with operation `op`.
fn devres_addrs(out: &str, op: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(&format!(": DEVRES {op} ")))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// `devm_add_action` outside a probe: the action runs, with its data, when the device's
/// resources go (`device_del`); `driver_unregister` unbinds every bound device through its
/// remove block.
#[test]
fn actions_run_at_release_and_unregistering_unbinds_every_device() {
    let mut sh = shell("devres.log=1");
    let before = settle(&sh);
    let (out, err) = run(
        &mut sh,
        "d = device_create(\"gadget\", \"platform\")\n\
         devm_add_action(d, { echo first $data }, 1)\n\
         devm_add_action(d, { echo second $data })\n\
         device_del(d)\n\
         driver_register(\"led\", \"platform\", { n++ }, { echo remove $dev; n-- })\n\
         n = 0\n\
         a = device_create(\"led0\", \"platform\")\n\
         b = device_create(\"led1\", \"platform\")\n\
         n\n\
         driver_unregister(\"led\")\n\
         n\n\
         cat /sys/bus/platform/drivers\n\
         device_del(a)\n\
         device_del(b)\n",
    );
    assert!(err.is_empty(), "{err}");
    let second = out.find("second 0x0\n").expect("NULL data by default");
    let first = out.find("first 1\n").expect("its data");
    assert!(second < first, "newest first: {out}");
    assert_eq!(
        devres(&out),
        [
            "ADD shell_action (16 bytes)",
            "ADD shell_action (16 bytes)",
            "REL shell_action (16 bytes)",
            "REL shell_action (16 bytes)",
        ],
        "{out}"
    );
    assert_eq!(out.matches("remove 0x").count(), 2, "{out}");
    assert!(out.contains("\n2\n") && out.ends_with("0\n"), "{out}");
    assert_eq!(settle(&sh), before, "nothing leaked");
}

/// Issue 16's Done-when: a probe that takes five managed resources and fails at the fourth
/// releases the three it has, newest first, and the trace shows it in Linux's format.
#[test]
fn a_probe_failing_at_the_fourth_resource_releases_three_in_reverse_order() {
    let mut sh = shell("devres.log=1");
    let before = settle(&sh);
    let (out, err) = run(
        &mut sh,
        "driver_register(\"camera\", \"platform\", {\n\
         \x20   a = devm_kzalloc(dev, 100, GFP_KERNEL)\n\
         \x20   if (!a) return -ENOMEM\n\
         \x20   b = devm_kzalloc(dev, 200, GFP_KERNEL)\n\
         \x20   if (!b) return -ENOMEM\n\
         \x20   devm_add_action(dev, { powered_off = data }, b)\n\
         \x20   c = devm_kmalloc(dev, 1 << 30, GFP_KERNEL | __GFP_NOWARN)\n\
         \x20   if (!c) return -ENOMEM\n\
         \x20   e = devm_kstrdup(dev, \"never\", GFP_KERNEL)\n\
         \x20   return 0\n\
         })\n\
         powered_off = 0\n\
         d = device_create(\"camera0\", \"platform\")\n\
         powered_off == b\n\
         cat /sys/bus/platform/drivers/camera\n\
         device_del(d)\n\
         driver_unregister(\"camera\")\n",
    );
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        devres(&out),
        [
            "ADD devm_kzalloc_release (100 bytes)",
            "ADD devm_kzalloc_release (200 bytes)",
            "ADD shell_action (16 bytes)",
            "REL shell_action (16 bytes)",
            "REL devm_kzalloc_release (200 bytes)",
            "REL devm_kzalloc_release (100 bytes)",
        ],
        "{out}"
    );
    let (add, rel) = (devres_addrs(&out, "ADD"), devres_addrs(&out, "REL"));
    assert_eq!(
        add.iter().rev().collect::<Vec<_>>(),
        rel.iter().collect::<Vec<_>>()
    );
    assert!(
        out.contains("camera camera0: DEVRES ADD ffff8880"),
        "Linux's dev_printk prefix and %p with no_hash_pointers: {out}"
    );
    // Linux's order and prefix (drivers/base/dd.c `call_driver_probe`, then `probe_failed`).
    let failed = out
        .find("camera camera0: probe with driver camera failed with error -12")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(failed < out.find("DEVRES REL").unwrap(), "{out}");
    assert!(out.contains("\n1\n"), "the action ran with its data: {out}");
    assert!(!out.contains("camera0\nuevent"), "left unbound: {out}");
    assert_eq!(settle(&sh), before, "nothing leaked");
    assert!(!sh.failed());
}

/// Unbinding a bound device runs the remove block, then releases every resource the probe
/// took (newest first); the device binds again afterwards, and nothing leaks.
#[test]
fn unbinding_a_bound_device_releases_all_of_its_resources() {
    let mut sh = shell("devres.log=1");
    let before = settle(&sh);
    let (out, err) = run(
        &mut sh,
        "driver_register(\"sensor\", \"platform\", {\n\
         \x20   a = devm_kmalloc(dev, 64, GFP_KERNEL)\n\
         \x20   b = devm_kcalloc(dev, 4, 32, GFP_KERNEL)\n\
         \x20   s = devm_kstrdup(dev, \"sensor\", GFP_KERNEL)\n\
         \x20   pg = devm_get_free_pages(dev, GFP_KERNEL, 1)\n\
         \x20   ret = devm_add_action_or_reset(dev, { echo action $data }, 7)\n\
         \x20   if (ret) return ret\n\
         \x20   probes++\n\
         }, {\n\
         \x20   echo remove\n\
         })\n\
         probes = 0\n\
         d = device_create(\"sensor0\", \"platform\")\n\
         cat /sys/bus/platform/drivers/sensor\n",
    );
    assert!(err.is_empty(), "{err}");
    assert_eq!(devres(&out).len(), 5, "{out}");
    assert!(out.contains("bind\nsensor0\nuevent"), "bound: {out}");
    let h = sh.k.real(match sh.var("d") {
        Some(super::Value::Ptr(x, _)) => *x,
        v => panic!("{v:?}"),
    });
    let h = sh.k.m.device_handle(h.unwrap()).unwrap();
    assert_eq!(sh.k.m.devres_count(h), Ok(5));
    let (out, err) = run(&mut sh, "device_unbind(d)\n");
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        devres(&out),
        [
            "REL shell_action (16 bytes)",
            "REL devm_pages_release (16 bytes)",
            "REL devm_kzalloc_release (7 bytes)",
            "REL devm_kzalloc_release (128 bytes)",
            "REL devm_kzalloc_release (64 bytes)",
        ],
        "{out}"
    );
    let remove = out.find("remove\n").expect("the remove block ran");
    let action = out.find("action 7\n").expect("the action ran");
    assert!(
        remove < out.find("DEVRES REL").unwrap(),
        "remove first: {out}"
    );
    assert!(action < out.find("devm_pages_release").unwrap(), "{out}");
    assert_eq!(sh.k.m.devres_count(h), Ok(0));
    let (out, err) = run(
        &mut sh,
        "device_attach(d)\nprobes\ndevice_del(d)\ndriver_unregister(\"sensor\")\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("\n2\n"), "probed again: {out}");
    assert_eq!(devres(&out).len(), 10, "taken and released again: {out}");
    assert_eq!(settle(&sh), before, "nothing leaked");
}

/// `return -EPROBE_DEFER` puts the device on the deferred list; the next successful bind
/// (a later driver's) probes it again, and it binds.
#[test]
fn a_deferred_probe_binds_after_a_later_driver_binds() {
    let mut sh = shell("");
    let (out, err) = run(
        &mut sh,
        "clk = 0\n\
         driver_register(\"lens\", \"platform\", {\n\
         \x20   if (!clk) return -EPROBE_DEFER\n\
         \x20   devm_kmalloc(dev, 16, GFP_KERNEL)\n\
         })\n\
         l = device_create(\"lens0\", \"platform\")\n\
         cat /sys/kernel/debug/devices_deferred\n\
         cat /sys/bus/platform/drivers/lens\n\
         driver_register(\"clk\", \"platform\", { clk = dev; return 0 })\n\
         c = device_create(\"clk0\", \"platform\")\n\
         cat /sys/kernel/debug/devices_deferred\n\
         cat /sys/bus/platform/drivers/lens\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(
        !out.contains("probe with driver"),
        "deferral is quiet: {out}"
    );
    let first = out.find("lens0\t\n").expect("deferred");
    let bound = out.rfind("bind\nlens0\nuevent").expect("bound in the end");
    assert!(first < bound);
    assert_eq!(out.matches("lens0\t").count(), 1, "off the list: {out}");
}

/// Input the shell refuses: one error line each (with the source line and caret), nothing
/// run, no panic, and the session goes on.
#[test]
fn bad_block_input_gives_one_line_errors() {
    let mut sh = shell("");
    let cases: &[(&str, &str)] = &[
        (
            "driver_register(\"a\", \"platform\", 5)\n",
            "driver_register: argument 3: expected a block { … }",
        ),
        ("return 0\n", "'return' outside a block argument"),
        (
            "driver_register(\"a\", \"platform\", {\n  x = kmalloc(8, \n  return 0\n})\n",
            "expected an expression, found end of statement",
        ),
        (
            "driver_register(\"a\", \"platform\", { break })\n",
            "break statement not within loop",
        ),
        (
            "kmalloc({ return 1 }, GFP_KERNEL)\n",
            "a block { } is only an argument of driver_register or devm_add_action",
        ),
        ("x = ({ })\n", "a block { } is only a function's argument"),
        (
            "driver_register(\"a\", \"platform\")\n",
            "driver_register takes 3 to 4 arguments, got 2",
        ),
        (
            "driver_register(1, \"platform\", { })\n",
            "driver_register: argument 1: expected a string, got long 1",
        ),
        (
            "driver_unregister(\"nosuch\")\n",
            "no driver 'nosuch' was registered from the shell",
        ),
        (
            "devm_add_action(0x1000, { })\n",
            "devm_add_action: 0x1000 is not a registered struct device",
        ),
        (
            "driver_register(\"a\", \"nosuchbus\", { })\n",
            "driver_register: -ENODEV (No such device)",
        ),
    ];
    for (i, (src, want)) in cases.iter().enumerate() {
        let (_, err) = run(&mut sh, src);
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error:")).collect();
        assert_eq!(errors.len(), 1, "{src}: {err}");
        assert!(errors[0].contains(want), "{src}: {err}");
        assert_eq!(sh.errors, i + 1);
    }
    // The failed registrations left nothing behind: the name is free.
    let (out, err) = run(
        &mut sh,
        "driver_register(\"a\", \"platform\", { return 0 })\ncat /sys/bus/platform/drivers\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("\na\n"), "{out}");
}

/// An error inside a probe is reported where it was written and fails the probe with
/// -EINVAL; its resources are released and the driver core is usable afterwards.
#[test]
fn an_error_in_a_probe_fails_it_with_einval() {
    let mut sh = shell("devres.log=1");
    let before = settle(&sh);
    let (out, err) = run(
        &mut sh,
        "driver_register(\"cam\", \"platform\", {\n\
         \x20   a = devm_kmalloc(dev, 64, GFP_KERNEL)\n\
         \x20   x = nosuch + 1\n\
         \x20   return 0\n\
         })\n\
         c = device_create(\"cam0\", \"platform\")\n\
         driver_register(\"str\", \"platform\", { return \"no\" })\n\
         s = device_create(\"str0\", \"platform\")\n\
         device_del(c)\n\
         device_del(s)\n\
         driver_unregister(\"cam\")\n\
         driver_unregister(\"str\")\n",
    );
    assert!(
        err.starts_with("t:3:9: error: undefined variable 'nosuch'\n"),
        "{err}"
    );
    assert!(
        err.contains("error: a probe returns an int (0 or -ERRNO), not string \"no\""),
        "{err}"
    );
    assert!(
        out.contains("cam cam0: probe with driver cam failed with error -22"),
        "{out}"
    );
    assert!(
        out.contains("str str0: probe with driver str failed with error -22"),
        "{out}"
    );
    assert_eq!(devres(&out).len(), 2, "{out}");
    assert_eq!(sh.errors, 2);
    assert!(
        sh.var("dev").is_none(),
        "dev is bound only while a probe runs"
    );
    assert_eq!(settle(&sh), before, "nothing leaked");
}

/// `exit` inside a probe ends the probe (failed, resources released) and then the shell.
#[test]
fn exit_in_a_probe_fails_it_and_ends_the_shell() {
    let mut sh = shell("");
    let (out, _) = run(
        &mut sh,
        "driver_register(\"ex\", \"platform\", { devm_kmalloc(dev, 8, GFP_KERNEL); exit 3 })\n\
         e = device_create(\"ex0\", \"platform\")\n",
    );
    assert!(
        out.contains("ex ex0: probe with driver ex failed with error -22"),
        "{out}"
    );
    assert!(sh.quit);
    assert_eq!(sh.status(), 3);
    let h = sh.k.m.bus_find_device_by_name("platform", "ex0").unwrap();
    assert_eq!(sh.k.m.devres_count(h), Ok(0));
    // Not busy: the driver core lets it go.
    assert_eq!(sh.k.m.device_unregister(h), Ok(()));
}

/// Ctrl-C inside a probe's endless loop stops it: the probe fails, the device is not left
/// busy, and the driver core goes on working.
#[test]
fn an_interrupt_in_a_probe_leaves_the_driver_core_usable() {
    static FLAG: AtomicBool = AtomicBool::new(false);
    static DONE: AtomicBool = AtomicBool::new(false);
    let mut sh = shell("");
    sh.interrupt = Some(&FLAG);
    // Keeps pressing Ctrl-C until the test is done (the shell clears the flag at each new
    // statement, so one press could come too early).
    let presser = std::thread::spawn(|| {
        while !DONE.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            FLAG.store(true, Ordering::Relaxed);
        }
    });
    let (out, err) = run(
        &mut sh,
        "driver_register(\"spin\", \"platform\", { devm_kmalloc(dev, 8, GFP_KERNEL); while (1) { } })\n\
         d = device_create(\"spin0\", \"platform\")\n",
    );
    DONE.store(true, Ordering::Relaxed);
    presser.join().unwrap();
    assert!(err.contains("error: interrupted"), "{err}");
    assert!(
        out.contains("spin spin0: probe with driver spin failed with error -22"),
        "{out}"
    );
    sh.interrupt = None;
    let (out, err) = run(
        &mut sh,
        "device_del(d)\ndriver_unregister(\"spin\")\ncat /sys/bus/platform/drivers\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(!out.contains("spin"), "{out}");
}

/// A probe that adds a device that is probed, that adds one … stops at the nesting bound:
/// the deepest probe is not run and fails; every level above goes on.
#[test]
fn probes_nest_only_so_deep() {
    let mut sh = shell("");
    let levels = super::driver::MAX_BLOCK_DEPTH + 3;
    // `depth` is the shell's (global): one branch per probe.
    let mut chain = String::from("depth++\n");
    for i in 1..=levels {
        if i > 1 {
            chain.push_str(" else ");
        }
        chain.push_str(&format!(
            "if (depth == {i}) {{ device_create(\"chain{i}\", \"platform\") }}"
        ));
    }
    chain.push('\n');
    let (out, err) = run(
        &mut sh,
        &format!(
            "depth = 0\ndriver_register(\"chain\", \"platform\", {{\n{chain}}})\n\
             d = device_create(\"chain0\", \"platform\")\ndepth\n\
             cat /sys/bus/platform/drivers/chain\n"
        ),
    );
    let max = super::driver::MAX_BLOCK_DEPTH;
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "probe: blocks nested too deeply (more than {max} levels)"
        )),
        "{err}"
    );
    assert!(
        out.contains(&format!("\n{max}\n")),
        "{max} probes ran: {out}"
    );
    assert!(
        out.contains(&format!(
            "chain chain{max}: probe with driver chain failed with error -22"
        )),
        "{out}"
    );
    // Levels 0 .. max-1 bound.
    for i in 1..max {
        assert!(out.contains(&format!("\nchain{i}\n")), "chain{i}: {out}");
    }
}

/// The nesting bound holds on a test thread's stack (2 MiB) even when every level calls
/// from deep inside an expression (60 nested operators, near the parser's bound of 64: each
/// is a level of the evaluator's recursion).
#[test]
fn deep_expressions_at_every_probe_level_fit_the_stack() {
    let mut sh = shell("");
    let deep = |call: &str| format!("{}{call}", "!".repeat(60));
    let mut chain = String::from("depth++\n");
    for i in 1..=super::driver::MAX_BLOCK_DEPTH + 1 {
        if i > 1 {
            chain.push_str(" else ");
        }
        let call = deep(&format!("device_create(\"deep{i}\", \"platform\")"));
        chain.push_str(&format!("if (depth == {i}) {{ x = {call} }}"));
    }
    let (out, err) = run(
        &mut sh,
        &format!(
            "depth = 0\ndriver_register(\"deep\", \"platform\", {{\n{chain}\n}})\n\
             d = {}\ndepth\n",
            deep("device_create(\"deep0\", \"platform\")")
        ),
    );
    // One probe refused (by depth or by stack), every level above it went on.
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains("): not run"), "{err}");
    let depth: usize = out.lines().last().unwrap().parse().unwrap();
    assert!(
        (1..=super::driver::MAX_BLOCK_DEPTH).contains(&depth),
        "{out}"
    );
}
