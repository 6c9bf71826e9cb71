//! The driver core and devres (drivers/base/{dd,devres}.c): binding, probe failure,
//! deferred probe, unbinding, groups, the devm allocators and the `devres.log=1` trace.

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};

use kmem::arch::Arch;
use kmem::base::{DevLayer, DeviceHandle, DriverOps};
use kmem::errno::Errno;
use kmem::{GfpFlags, Order};
use kmem_hosted::HostedPlatform;

type L = DevLayer<HostedPlatform>;

fn dmesg(m: &M) -> String {
    let mut s = String::new();
    m.dmesg(&mut s, false).unwrap();
    s
}

fn devres_lines(m: &M) -> Vec<String> {
    dmesg(m)
        .lines()
        .filter(|l| l.contains("DEVRES"))
        .map(|l| {
            // Drop the node address: "platform camera0: DEVRES ADD <addr> name (n bytes)".
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "DEVRES").unwrap();
            format!("{} {} {}", w[i + 1], w[i + 3], w[i + 4..].join(" "))
        })
        .collect()
}

static ACTIONS: AtomicUsize = AtomicUsize::new(0);

fn power_off(_m: &L, data: usize) {
    ACTIONS.fetch_add(data, Ordering::SeqCst);
}

/// Allocates five managed resources; the fourth fails (a size beyond KMALLOC_MAX_SIZE).
struct FailsAtFourth;
impl DriverOps<HostedPlatform> for FailsAtFourth {
    fn probe(&self, m: &L, d: DeviceHandle) -> Result<(), Errno> {
        m.devm_kzalloc(d, 100, GfpFlags::GFP_KERNEL)
            .ok_or(Errno::ENOMEM)?;
        m.devm_kmalloc(d, 200, GfpFlags::GFP_KERNEL)
            .ok_or(Errno::ENOMEM)?;
        m.devm_add_action(d, power_off, 1, "power_off")?;
        m.devm_kmalloc(d, 1 << 40, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)
            .ok_or(Errno::ENOMEM)?;
        m.devm_kmalloc(d, 300, GfpFlags::GFP_KERNEL)
            .ok_or(Errno::ENOMEM)?;
        Ok(())
    }
}

#[test]
fn failed_probe_releases_what_it_took_in_reverse_order() {
    let m = boot_with(Arch::X86_64, 256 << 20, 2, "devres.log=1", 42);
    let before = settle(&m);
    ACTIONS.store(0, Ordering::SeqCst);
    let d = m.device_create("camera0", "platform").unwrap();
    let drv_h = m
        .driver_register("camera", "platform", &FailsAtFourth)
        .unwrap();
    assert_eq!(
        devres_lines(&m),
        [
            "ADD devm_kzalloc_release (100 bytes)",
            "ADD devm_kzalloc_release (200 bytes)",
            "ADD power_off (16 bytes)",
            "REL power_off (16 bytes)",
            "REL devm_kzalloc_release (200 bytes)",
            "REL devm_kzalloc_release (100 bytes)",
        ]
    );
    assert_eq!(ACTIONS.load(Ordering::SeqCst), 1, "the action ran once");
    // drivers/base/dd.c: `call_driver_probe` logs the failure while the device still names
    // its driver (dev_err's prefix is the driver's name), before `really_probe`'s
    // `probe_failed` path releases the probe's resources.
    let log = dmesg(&m);
    let failed = log
        .find("camera camera0: probe with driver camera failed with error -12")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(failed < log.find("DEVRES REL").unwrap(), "{log}");
    let mut drv = String::new();
    assert!(!m.dev_driver(d, &mut drv).unwrap(), "left unbound");
    assert_eq!(m.devres_count(d), Ok(0));
    m.device_unregister(d).unwrap();
    m.driver_unregister(drv_h).unwrap();
    assert_eq!(settle(&m), before, "nothing leaked");
}

static BOUND_BUF: AtomicUsize = AtomicUsize::new(0);

/// Takes five resources and succeeds.
struct TakesFive;
impl DriverOps<HostedPlatform> for TakesFive {
    fn probe(&self, m: &L, d: DeviceHandle) -> Result<(), Errno> {
        let p = m
            .devm_kzalloc(d, 64, GfpFlags::GFP_KERNEL)
            .ok_or(Errno::ENOMEM)?;
        BOUND_BUF.store(p.as_ptr() as usize, Ordering::SeqCst);
        m.devm_kstrdup(d, "camera firmware", GfpFlags::GFP_KERNEL)
            .ok_or(Errno::ENOMEM)?;
        m.devm_kmemdup(d, &[1, 2, 3], GfpFlags::GFP_KERNEL)
            .ok_or(Errno::ENOMEM)?;
        m.devm_get_free_pages(d, GfpFlags::GFP_KERNEL, Order::try_new(2).unwrap())
            .ok_or(Errno::ENOMEM)?;
        m.devm_add_action_or_reset(d, power_off, 10, "power_off")?;
        Ok(())
    }
    fn remove(&self, m: &L, d: DeviceHandle) {
        // Still managed while remove runs.
        assert_eq!(m.devres_count(d), Ok(5));
    }
}

#[test]
fn unbinding_releases_everything_and_rebinding_works() {
    let m = boot_with(Arch::X86_64, 256 << 20, 2, "devres.log=1", 7);
    let before = settle(&m);
    ACTIONS.store(0, Ordering::SeqCst);
    let drv_h = m.driver_register("sensor", "platform", &TakesFive).unwrap();
    let d = m.device_create("sensor.1", "platform").unwrap();
    let mut drv = String::new();
    assert!(m.dev_driver(d, &mut drv).unwrap());
    assert_eq!(drv, "sensor");
    assert_eq!(m.devres_count(d), Ok(5));
    let mut s = String::new();
    m.proc_read("/sys/bus/platform/drivers/sensor", &mut s)
        .unwrap();
    assert_eq!(s, "bind\nsensor.1\nuevent\nunbind\n");
    m.device_release_driver(d).unwrap();
    assert_eq!(m.devres_count(d), Ok(0));
    assert_eq!(ACTIONS.load(Ordering::SeqCst), 10);
    let rel: Vec<String> = devres_lines(&m)
        .into_iter()
        .filter(|l| l.starts_with("REL"))
        .collect();
    assert_eq!(
        rel,
        [
            "REL power_off (16 bytes)",
            "REL devm_pages_release (16 bytes)",
            "REL devm_kzalloc_release (3 bytes)",
            "REL devm_kzalloc_release (16 bytes)",
            "REL devm_kzalloc_release (64 bytes)",
        ]
    );
    // Bind again by hand, then unregister the bound device: released once more.
    assert!(m.device_attach(d));
    m.device_unregister(d).unwrap();
    assert_eq!(ACTIONS.load(Ordering::SeqCst), 20);
    assert_eq!(
        m.device_release_driver(d),
        Err(Errno::ENODEV),
        "stale handle"
    );
    m.driver_unregister(drv_h).unwrap();
    assert_eq!(
        m.driver_unregister(drv_h),
        Err(Errno::ENODEV),
        "stale driver handle"
    );
    assert_eq!(settle(&m), before, "nothing leaked");
}

static DEFER_UNTIL: AtomicUsize = AtomicUsize::new(0);

/// Defers until the "supplier" driver is registered.
struct NeedsSupplier;
impl DriverOps<HostedPlatform> for NeedsSupplier {
    fn probe(&self, m: &L, d: DeviceHandle) -> Result<(), Errno> {
        m.devm_kmalloc(d, 32, GfpFlags::GFP_KERNEL)
            .ok_or(Errno::ENOMEM)?;
        if DEFER_UNTIL.load(Ordering::SeqCst) == 0 {
            return Err(Errno::EPROBE_DEFER);
        }
        Ok(())
    }
}
struct Supplier;
impl DriverOps<HostedPlatform> for Supplier {
    fn probe(&self, _m: &L, _d: DeviceHandle) -> Result<(), Errno> {
        DEFER_UNTIL.store(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn deferred_probe_is_retried_after_a_successful_bind() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    DEFER_UNTIL.store(0, Ordering::SeqCst);
    m.driver_register("display", "platform", &NeedsSupplier)
        .unwrap();
    let d = m.device_create("display0", "platform").unwrap();
    let mut s = String::new();
    m.proc_read("/sys/kernel/debug/devices_deferred", &mut s)
        .unwrap();
    assert_eq!(s, "display0\t\n");
    assert_eq!(
        m.devres_count(d),
        Ok(0),
        "the deferred probe's memory was released"
    );
    assert!(
        !dmesg(&m).contains("failed with error"),
        "deferral is quiet"
    );
    m.driver_register("pmic", "platform", &Supplier).unwrap();
    m.device_create("pmic", "platform").unwrap();
    let mut drv = String::new();
    assert!(
        m.dev_driver(d, &mut drv).unwrap(),
        "bound after the supplier bound"
    );
    assert_eq!(drv, "display");
    s.clear();
    m.proc_read("/sys/kernel/debug/devices_deferred", &mut s)
        .unwrap();
    assert_eq!(s, "");
    s.clear();
    m.proc_read("/sys/bus/platform/devices", &mut s).unwrap();
    assert_eq!(s, "display0\npmic\n");
    s.clear();
    m.proc_read("/sys/bus/platform/drivers", &mut s).unwrap();
    assert_eq!(s, "display\npmic\n");
}

struct Nop;
impl DriverOps<HostedPlatform> for Nop {
    fn probe(&self, _m: &L, _d: DeviceHandle) -> Result<(), Errno> {
        Ok(())
    }
}

#[test]
fn groups_release_only_their_part() {
    let m = boot_with(Arch::X86_64, 256 << 20, 2, "devres.log=1", 9);
    let before = settle(&m);
    let d = m.device_create("gadget", "platform").unwrap();
    m.devm_kmalloc(d, 10, GfpFlags::GFP_KERNEL).unwrap();
    let g = m.devres_open_group(d, None, GfpFlags::GFP_KERNEL).unwrap();
    m.devm_kmalloc(d, 20, GfpFlags::GFP_KERNEL).unwrap();
    m.devm_kmalloc(d, 30, GfpFlags::GFP_KERNEL).unwrap();
    m.devres_close_group(d, Some(g));
    m.devm_kmalloc(d, 40, GfpFlags::GFP_KERNEL).unwrap();
    assert_eq!(m.devres_count(d), Ok(6), "4 resources and 2 markers");
    assert_eq!(m.devres_release_group(d, Some(g)), Ok(2));
    assert_eq!(m.devres_count(d), Ok(2));
    let lines = devres_lines(&m);
    let rel: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("REL"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        rel,
        [
            "REL grp< (0 bytes)",
            "REL devm_kzalloc_release (30 bytes)",
            "REL devm_kzalloc_release (20 bytes)",
        ],
        "release_nodes walks the todo list backwards; the open marker was moved last"
    );
    // An open group released: up to the end of the list.
    let g2 = m.devres_open_group(d, None, GfpFlags::GFP_KERNEL).unwrap();
    m.devm_kmalloc(d, 50, GfpFlags::GFP_KERNEL).unwrap();
    assert_eq!(m.devres_release_group(d, Some(g2)), Ok(1));
    // A removed group keeps its resources.
    let g3 = m.devres_open_group(d, None, GfpFlags::GFP_KERNEL).unwrap();
    m.devm_kmalloc(d, 60, GfpFlags::GFP_KERNEL).unwrap();
    m.devres_close_group(d, None);
    m.devres_remove_group(d, Some(g3));
    assert_eq!(m.devres_count(d), Ok(3));
    // Unknown group: WARN and ENOENT, nothing changes.
    let warns = m.warn_count();
    assert_eq!(m.devres_release_group(d, Some(12345)), Err(Errno::ENOENT));
    assert_eq!(m.warn_count(), warns + 1);
    assert_eq!(m.devres_count(d), Ok(3));
    m.device_unregister(d).unwrap();
    assert_eq!(settle(&m), before, "nothing leaked");
}

#[test]
fn devm_krealloc_and_kfree_keep_the_list_right() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let before = settle(&m);
    let d = m.device_create("buf", "platform").unwrap();
    let drv_h = m.driver_register("buf", "platform", &Nop).unwrap();
    let p = m.devm_kmalloc(d, 24, GfpFlags::GFP_KERNEL).unwrap();
    // SAFETY: `p` has 24 bytes.
    unsafe { std::ptr::write_bytes(p.as_ptr(), 0x5a, 24) };
    let q = m
        .devm_krealloc(
            d,
            p.as_ptr(),
            4000,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
        )
        .unwrap();
    assert_ne!(p, q, "moved to a bigger block");
    // SAFETY: `q` has 4000 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(q.as_ptr(), 4000) };
    assert!(bytes[..24].iter().all(|&b| b == 0x5a), "contents kept");
    assert!(
        bytes[200..].iter().all(|&b| b == 0),
        "the new tail is zeroed"
    );
    assert_eq!(m.devres_count(d), Ok(1), "replaced, not added");
    // Shrinking keeps the block.
    let r = m
        .devm_krealloc(d, q.as_ptr(), 100, GfpFlags::GFP_KERNEL)
        .unwrap();
    assert_eq!(r, q);
    // Foreign pointers: WARN, nothing freed or looked into.
    let plain = m.kmalloc(32, GfpFlags::GFP_KERNEL).unwrap();
    let warns = m.warn_count();
    m.devm_kfree(d, plain.as_ptr());
    assert!(m
        .devm_krealloc(d, plain.as_ptr(), 64, GfpFlags::GFP_KERNEL)
        .is_none());
    m.devm_kfree(d, 0x1234 as *const u8);
    assert_eq!(m.warn_count(), warns + 3);
    m.kfree(plain.as_ptr());
    m.devm_kfree(d, r.as_ptr());
    assert_eq!(m.devres_count(d), Ok(0));
    assert!(m
        .devm_kcalloc(d, usize::MAX / 2, 4, GfpFlags::GFP_KERNEL)
        .is_none());
    m.device_unregister(d).unwrap();
    m.driver_unregister(drv_h).unwrap();
    assert_eq!(settle(&m), before, "nothing leaked");
}

#[test]
fn bad_calls_are_errors_not_crashes() {
    let m = boot(Arch::X86_64, 128 << 20, 1);
    assert_eq!(m.device_create("x", "nosuchbus").err(), Some(Errno::ENODEV));
    assert_eq!(m.device_create("", "platform").err(), Some(Errno::EINVAL));
    assert_eq!(
        m.device_create("a/b", "platform").err(),
        Some(Errno::EINVAL)
    );
    let d = m.device_create("dup", "platform").unwrap();
    assert_eq!(
        m.device_create("dup", "platform").err(),
        Some(Errno::EEXIST)
    );
    m.driver_register("drv", "platform", &Nop).unwrap();
    assert_eq!(
        m.driver_register("drv", "platform", &Nop).err(),
        Some(Errno::EBUSY)
    );
    assert!(dmesg(&m).contains("Error: Driver 'drv' is already registered, aborting..."));
    assert_eq!(m.bus_register("platform"), Err(Errno::EEXIST));
    m.bus_register("spi").unwrap();
    let mut s = String::new();
    m.proc_read("/sys/bus/spi/devices", &mut s).unwrap();
    assert_eq!(s, "");
    assert!(m.proc_read("/sys/bus/nosuch/devices", &mut s).is_err());
    m.device_unregister(d).unwrap();
    assert_eq!(m.device_unregister(d), Err(Errno::ENODEV));
    assert!(m.devm_kmalloc(d, 8, GfpFlags::GFP_KERNEL).is_none());
}

#[test]
fn plain_kfree_of_a_devm_pointer_is_reported_and_ignored() {
    let m = boot(Arch::X86_64, 128 << 20, 1);
    let d = m.device_create("leaky", "platform").unwrap();
    let p = m.devm_kmalloc(d, 100, GfpFlags::GFP_KERNEL).unwrap();
    let bugs = m.bug_count() + m.warn_count();
    m.kfree(p.as_ptr());
    assert!(m.bug_count() + m.warn_count() > bugs, "reported");
    // The block's start is the devres header: SLUB sees a pointer inside an object.
    assert!(
        dmesg(&m).contains("Invalid object pointer"),
        "{}",
        dmesg(&m)
    );
    assert_eq!(m.devres_count(d), Ok(1), "still managed");
    m.device_unregister(d).unwrap();
}
