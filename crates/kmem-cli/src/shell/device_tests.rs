//! The driver-core and devres functions driven by the shell (issue 16).

use super::{Origin, Shell};
use crate::kernel::{BootOptions, Kernel};
use kmem::arch::Arch;

fn shell(cmdline: &str) -> Shell {
    shell_mem(128 << 20, cmdline)
}

/// A shell on an x86_64 machine of `mem` bytes booted with `cmdline` (shared with
/// `cma_tests`).
pub(super) fn shell_mem(mem: u64, cmdline: &str) -> Shell {
    let k = Kernel::boot(&BootOptions {
        arch: Arch::X86_64,
        mem,
        cpus: 1,
        cmdline: cmdline.to_string(),
        seed: 0,
        maxmem: 0,
        numa: Default::default(),
    })
    .unwrap();
    Shell::new(k)
}

/// Runs each line; returns (stdout, stderr).
pub(super) fn run(sh: &mut Shell, src: &str) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for (i, l) in src.lines().enumerate() {
        sh.run_line(
            l,
            Origin {
                source: Some("t"),
                line: i + 1,
                indent: 0,
            },
            &mut out,
            &mut err,
        );
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn devm_memory_goes_with_the_device_and_the_trace_shows_it() {
    let mut sh = shell("devres.log=1");
    let (out, err) = run(
        &mut sh,
        "d = device_create(\"camera0\", \"platform\")\n\
         a = devm_kmalloc(d, 100, GFP_KERNEL)\n\
         b = devm_kzalloc(d, 200, GFP_KERNEL)\n\
         s = devm_kstrdup(d, \"sensor\", GFP_KERNEL)\n\
         cat /sys/bus/platform/devices\n\
         device_del(d)\n",
    );
    assert!(err.is_empty(), "{err}");
    let devres: Vec<&str> = out.lines().filter(|l| l.contains("DEVRES")).collect();
    assert_eq!(devres.len(), 6, "{out}");
    assert!(devres[0].contains("platform camera0: DEVRES ADD "), "{out}");
    assert!(
        devres[0].ends_with("devm_kzalloc_release (100 bytes)"),
        "{out}"
    );
    // Released newest first.
    assert!(
        devres[3].ends_with("devm_kzalloc_release (7 bytes)"),
        "{out}"
    );
    assert!(
        devres[5].ends_with("devm_kzalloc_release (100 bytes)"),
        "{out}"
    );
    assert!(
        out.contains("\ncamera0\n") || out.starts_with("camera0\n"),
        "{out}"
    );
}

#[test]
fn groups_and_errors_in_the_shell() {
    let mut sh = shell("");
    let (out, err) = run(
        &mut sh,
        "d = device_create(\"gadget\", \"platform\")\n\
         g = devres_open_group(d, 0, GFP_KERNEL)\n\
         devm_kmalloc(d, 10, GFP_KERNEL)\n\
         devm_kmalloc(d, 20, GFP_KERNEL)\n\
         devres_close_group(d, g)\n\
         devres_release_group(d, g)\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(
        out.trim_end().ends_with('2'),
        "two resources released: {out}"
    );
    let (_, err) = run(&mut sh, "device_create(\"gadget\", \"platform\")\n");
    assert!(
        err.contains("device_create: -EEXIST (File exists)"),
        "{err}"
    );
    let (_, err) = run(&mut sh, "device_create(\"x\", \"nosuchbus\")\n");
    assert!(err.contains("-ENODEV"), "{err}");
    let (_, err) = run(&mut sh, "device_del(d)\ndevm_kmalloc(d, 8, GFP_KERNEL)\n");
    assert!(err.contains("is not a registered struct device"), "{err}");
}
