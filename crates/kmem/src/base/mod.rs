//! The driver core: buses, drivers and devices with matching, probe and removal, deferred
//! probe, and managed resources ([`devres`]) — drivers/base/{core,bus,dd,devres}.c.
//!
//! # Objects
//! - A **bus** (`struct bus_type`) has a name and two lists: its devices (`klist_devices`)
//!   and its drivers (`klist_drivers`). The `platform` bus exists from boot
//!   (`platform_bus_init`); others are made with [`DevLayer::bus_register`].
//! - A **driver** (`struct device_driver`) has a name, its bus, the [`DriverOps`] its probe
//!   and remove come from, and the list of devices bound to it.
//! - A **device** (`struct device`) has a name, its bus, the driver bound to it (or none), and
//!   its managed resources (`devres_head`).
//!
//! All three are kmalloc'd in the machine's memory (names are `kstrdup`ed), as Linux's are.
//! Callers hold [`DeviceHandle`]s and [`DriverHandle`]s: addresses that every call looks up
//! in the registry's lists before touching the object, so a stale or forged handle gets
//! `ENODEV` and never a use after free.
//!
//! # Matching, probe and removal
//! A device and a driver of one bus match when the driver's name is the device's name or the
//! device's name is the driver's name followed by an instance number (`camera` drives
//! `camera0`, `camera.1`): the platform bus's `platform_match` compares the driver's name
//! with the platform device's base name, and the instance suffix is how platform devices are
//! named (`"%s.%d"`). Adding a device probes it with the first matching driver
//! (`bus_probe_device`); registering a driver probes every unbound matching device
//! (`driver_attach`). `really_probe` sets the device's driver, calls the probe, and on
//! failure releases every resource the probe managed (`devres_release_all`) and unsets the
//! driver: `-EPROBE_DEFER` puts the device on the deferred list, `-ENODEV`/`-ENXIO` are quiet
//! rejections, any other error is logged as Linux logs it, before the release (`camera
//! camera0: probe with driver camera failed with error -12`). After every successful bind
//! the deferred devices are probed again (`driver_deferred_probe_trigger`). Unbinding (`device_release_driver`)
//! calls the driver's remove, then releases the device's managed resources in reverse
//! order of their registration.
//!
//! # Locking
//! - `device_model_lock` ([`DevState`]'s registry mutex; kmem's name: Linux splits it into
//!   the bus klists' spinlocks and `device_lock`) protects the three lists, every object's
//!   links and fields except the devres list. It is **not** held across a driver's probe or
//!   remove (they may allocate, add devices or register drivers): the device is marked
//!   `busy` instead, and calls that would unbind or delete a busy device fail with `EBUSY`.
//!   It may be held while allocating (rank 0, outside every allocator lock).
//! - `&dev->devres_lock` (per device, a spinlock as in Linux) protects the device's devres
//!   list; nothing allocates or frees under it (allocation happens before, freeing after,
//!   as `release_nodes` does).
//!
//! # Invariants
//! - A device is on its bus's device list and the registry's list from `device_add` to
//!   `device_unregister`; it is on its driver's list exactly while `driver` is non-null and
//!   not `busy`.
//! - A device is on the deferred list only while unbound.
//! - Every devres node on a device's list was allocated by [`devres`] and is freed exactly
//!   once, when released, destroyed or removed and freed.

pub mod devres;
pub mod dma;

use core::fmt::{self, Write};
use core::num::NonZeroUsize;
use core::ptr;
use core::sync::atomic::AtomicBool;

use kds::list::{self, ListHead};

use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::locking::{Lock, DEVICE_MODEL_LOCK, DEVRES_LOCK};
use crate::platform::{LogLevel, Platform};
use crate::task::TaskLayer;

/// What a driver does when it is bound and unbound (`probe` and `remove` of `struct
/// device_driver`).
pub trait DriverOps<P: Platform>: Sync {
    /// Binds the driver to `dev`. Resources the probe takes with the `devm_*` calls are
    /// released if it fails. `Err(EPROBE_DEFER)` asks for another try after the next
    /// successful bind; `ENODEV`/`ENXIO` reject the device quietly.
    fn probe(&self, m: &DevLayer<P>, dev: DeviceHandle) -> Result<(), Errno>;
    /// Unbinds the driver from `dev`; its managed resources are released after this.
    fn remove(&self, _m: &DevLayer<P>, _dev: DeviceHandle) {}
}

/// A device of a machine, as callers name it (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceHandle(NonZeroUsize);

impl DeviceHandle {
    /// The address of the device's `struct device` (for display and for
    /// [`DevLayer::device_handle`]).
    pub fn as_usize(self) -> usize {
        self.0.get()
    }
}

/// A driver of a machine, as callers name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DriverHandle(NonZeroUsize);

/// A kmalloc'd copy of a name.
#[derive(Clone, Copy)]
struct KName {
    ptr: *const u8,
    len: usize,
}

impl KName {
    /// # Safety
    /// `ptr` points at `len` bytes of UTF-8 that live until the name is freed.
    unsafe fn as_str<'a>(self) -> &'a str {
        // SAFETY: by the contract the bytes are a live copy of a `&str` (hence UTF-8).
        unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(self.ptr, self.len)) }
    }
}

/// `struct bus_type` with its private lists.
#[repr(C)]
struct Bus {
    /// On the registry's bus list.
    link: ListHead,
    devices: ListHead,
    drivers: ListHead,
    name: KName,
}

/// `struct device_driver`.
#[repr(C)]
struct Driver<P: Platform> {
    /// On its bus's driver list.
    link: ListHead,
    /// Devices bound to it (their `drv_node`).
    devices: ListHead,
    bus: *mut Bus,
    ops: &'static dyn DriverOps<P>,
    name: KName,
}

/// `struct device`.
#[repr(C)]
pub(crate) struct Device<P: Platform> {
    /// On the registry's device list (`devices_kset`).
    all: ListHead,
    /// On its bus's device list.
    bus_node: ListHead,
    /// On its driver's device list while bound.
    drv_node: ListHead,
    /// On the deferred-probe list while deferred.
    deferred: ListHead,
    bus: *mut Bus,
    driver: *mut Driver<P>,
    /// A probe or remove runs without the registry lock.
    busy: bool,
    name: KName,
    pub(crate) devres_lock: Lock<P::RawLock, ()>,
    /// Managed resources, oldest first (`devres_head`).
    pub(crate) devres_head: ListHead,
}

/// The registry's lists.
struct Registry {
    buses: ListHead,
    devices: ListHead,
    deferred: ListHead,
}

/// The driver core's state of one machine.
pub struct DevState<P: Platform> {
    reg: Lock<P::RawLock, Registry>,
    /// `devres.log=` (drivers/base/devres.c `log_devres`).
    pub(crate) log_devres: AtomicBool,
}

impl<P: Platform> DevState<P> {
    /// The state before `dev_init`, with the boot parameters it reads (`devres.log=N`).
    pub(crate) fn from_cmdline(cmdline: &str) -> Self {
        let log = cmdline.split_whitespace().any(|w| {
            w.strip_prefix("devres.log=")
                .is_some_and(|v| v.parse::<i64>().is_ok_and(|n| n != 0))
        });
        Self {
            reg: Lock::new(
                &DEVICE_MODEL_LOCK,
                Registry {
                    buses: ListHead::new(),
                    devices: ListHead::new(),
                    deferred: ListHead::new(),
                },
            ),
            log_devres: AtomicBool::new(log),
        }
    }
}

/// The driver core over the memory layers: `Deref`s to [`TaskLayer`].
pub struct DevLayer<P: Platform> {
    pub(crate) task: TaskLayer<P>,
    pub(crate) dev: DevState<P>,
}

impl<P: Platform> core::ops::Deref for DevLayer<P> {
    type Target = TaskLayer<P>;
    #[inline]
    fn deref(&self) -> &TaskLayer<P> {
        &self.task
    }
}

/// Whether driver `drv` drives device `dev` (see the module documentation).
fn names_match(drv: &str, dev: &str) -> bool {
    match dev.strip_prefix(drv) {
        Some("") => true,
        Some(rest) => {
            let digits = rest.strip_prefix('.').unwrap_or(rest);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The entries of `head` from oldest to newest, as raw links (`list_for_each`). The list
/// must not change during the walk.
///
/// # Safety
/// `head` is an initialised list whose entries stay linked while the iterator is used.
unsafe fn links(head: *const ListHead) -> impl Iterator<Item = *mut ListHead> {
    // SAFETY: an initialised head's `next` is valid (the caller's contract).
    let mut cur = unsafe { (*head).next };
    core::iter::from_fn(move || {
        if ptr::eq(cur, head) {
            return None;
        }
        let this = cur;
        // SAFETY: `this` is an entry of the list, linked while the iterator is used.
        cur = unsafe { (*this).next };
        Some(this)
    })
}

impl<P: Platform> DevLayer<P> {
    /// Initialises the lists in place and registers the platform bus (`platform_bus_init`).
    ///
    /// # Safety
    /// Once, at boot, after the layer is at its final address and before any other call.
    pub(crate) unsafe fn dev_init(&self) {
        if let Some(ld) = self.lockdep() {
            // SAFETY: the validator lives as long as the platform, so as this state; the lock
            // is not taken yet.
            unsafe { self.dev.reg.attach(ld) };
        }
        {
            // Lock order: device_model_lock (rank 0); docs/LOCKING.md.
            let mut r = self.dev.reg.lock();
            // SAFETY: the heads are at their final address (the caller's contract) and not
            // yet used.
            unsafe {
                ListHead::init(&mut r.buses);
                ListHead::init(&mut r.devices);
                ListHead::init(&mut r.deferred);
            }
        }
        // Without memory for two small objects the machine has no platform bus: every
        // device call then fails with ENODEV, which is what it would mean.
        let _ = self.bus_register("platform");
    }

    /// Logs `dev_printk`'s line: `"<driver or bus> <device>: <text>"`.
    pub(crate) fn dev_printk(
        &self,
        level: LogLevel,
        d: *const Device<P>,
        args: fmt::Arguments<'_>,
    ) {
        // SAFETY: callers pass a live device (found in the registry, or being released by
        // the only code that still reaches it).
        let (drv, name) = unsafe {
            let dv = &*d;
            let owner = if dv.driver.is_null() {
                (*dv.bus).name.as_str()
            } else {
                (*dv.driver).name.as_str()
            };
            (owner, dv.name.as_str())
        };
        self.printk(level, format_args!("{drv} {name}: {args}"));
    }

    fn kname(&self, s: &str) -> Option<KName> {
        let p = self.kstrdup(s, GfpFlags::GFP_KERNEL)?;
        Some(KName {
            ptr: p.as_ptr(),
            len: s.len(),
        })
    }

    fn free_kname(&self, n: KName) {
        self.kfree(n.ptr);
    }

    /// The bus named `name` (registry lock held).
    fn find_bus(&self, r: &Registry, name: &str) -> Option<*mut Bus> {
        // SAFETY: the bus list is initialised and unchanged while `r` (the lock) is held; each
        // entry is the `link` of a live Bus.
        unsafe {
            links(&r.buses)
                .map(|l| kds::container_of!(l, Bus, link))
                .find(|&b| (*b).name.as_str() == name)
        }
    }

    /// The device `h` names, if it is registered (registry lock held).
    fn find_device(&self, r: &Registry, h: DeviceHandle) -> Option<*mut Device<P>> {
        // SAFETY: the device list is initialised and unchanged while `r` (the registry lock) is
        // held, and each entry is the `all` link of a live `Device`, freed only after being
        // unlinked under that lock.
        unsafe {
            links(&r.devices)
                .map(|l| kds::container_of!(l, Device<P>, all))
                .find(|&d| d as usize == h.0.get())
        }
    }

    fn find_driver(&self, r: &Registry, h: DriverHandle) -> Option<*mut Driver<P>> {
        // SAFETY: as in `find_bus`: each bus's driver list is initialised and unchanged under
        // the lock, its entries the `link` of live drivers.
        unsafe {
            links(&r.buses)
                .map(|l| kds::container_of!(l, Bus, link))
                .flat_map(|b| links(&(*b).drivers))
                .map(|l| kds::container_of!(l, Driver<P>, link))
                .find(|&d| d as usize == h.0.get())
        }
    }

    /// Runs `f` on the device `h` names with the registry locked; `ENODEV` for a handle that
    /// names no registered device.
    pub(crate) fn with_device<T>(
        &self,
        h: DeviceHandle,
        f: impl FnOnce(*mut Device<P>) -> T,
    ) -> Result<T, Errno> {
        // Lock order: device_model_lock (rank 0); docs/LOCKING.md.
        let r = self.dev.reg.lock();
        let d = self.find_device(&r, h).ok_or(Errno::ENODEV)?;
        Ok(f(d))
    }

    /// `bus_register`: a bus named `name`; `EEXIST` if there is one.
    pub fn bus_register(&self, name: &str) -> Result<(), Errno> {
        if name.is_empty() || name.contains('/') {
            return Err(Errno::EINVAL);
        }
        // Lock order: device_model_lock (rank 0), then the allocator's locks; docs/LOCKING.md.
        let mut r = self.dev.reg.lock();
        if self.find_bus(&r, name).is_some() {
            return Err(Errno::EEXIST);
        }
        let kn = self.kname(name).ok_or(Errno::ENOMEM)?;
        let Some(p) = self.kmalloc(core::mem::size_of::<Bus>(), GfpFlags::GFP_KERNEL) else {
            self.free_kname(kn);
            return Err(Errno::ENOMEM);
        };
        let b = p.as_ptr().cast::<Bus>();
        // SAFETY: `b` is a fresh kmalloc block of Bus's size, aligned (kmalloc aligns to 8,
        // Bus's alignment); it is initialised before being linked, under the lock.
        unsafe {
            b.write(Bus {
                link: ListHead::new(),
                devices: ListHead::new(),
                drivers: ListHead::new(),
                name: kn,
            });
            ListHead::init(&mut (*b).devices);
            ListHead::init(&mut (*b).drivers);
            list::list_add_tail(&mut (*b).link, &mut r.buses);
        }
        Ok(())
    }

    /// `device_register` (`device_initialize` + `device_add`): a device named `name` on
    /// `bus`, probed with the first matching driver. `EEXIST` if the bus has a device of that
    /// name, `ENODEV` for an unknown bus.
    pub fn device_create(&self, name: &str, bus: &str) -> Result<DeviceHandle, Errno> {
        if name.is_empty() || name.contains('/') {
            return Err(Errno::EINVAL);
        }
        let h = {
            // Lock order: device_model_lock (rank 0), then the allocator's locks.
            let mut r = self.dev.reg.lock();
            let b = self.find_bus(&r, bus).ok_or(Errno::ENODEV)?;
            // SAFETY: `b` is a live bus and its device list is stable under the lock.
            let dup = unsafe {
                links(&(*b).devices)
                    .map(|l| kds::container_of!(l, Device<P>, bus_node))
                    .any(|d| (*d).name.as_str() == name)
            };
            if dup {
                return Err(Errno::EEXIST);
            }
            let kn = self.kname(name).ok_or(Errno::ENOMEM)?;
            let Some(p) = self.kzalloc(core::mem::size_of::<Device<P>>(), GfpFlags::GFP_KERNEL)
            else {
                self.free_kname(kn);
                return Err(Errno::ENOMEM);
            };
            let d = p.as_ptr().cast::<Device<P>>();
            // SAFETY: a fresh kmalloc block of Device's size and (8-byte) alignment, written
            // whole before anything links to it; linking happens under the registry lock.
            unsafe {
                d.write(Device {
                    all: ListHead::new(),
                    bus_node: ListHead::new(),
                    drv_node: ListHead::new(),
                    deferred: ListHead::new(),
                    bus: b,
                    driver: ptr::null_mut(),
                    busy: false,
                    name: kn,
                    devres_lock: Lock::new(&DEVRES_LOCK, ()),
                    devres_head: ListHead::new(),
                });
                if let Some(ld) = self.lockdep() {
                    (*d).devres_lock.attach(ld);
                }
                ListHead::init(&mut (*d).drv_node);
                ListHead::init(&mut (*d).deferred);
                ListHead::init(&mut (*d).devres_head);
                list::list_add_tail(&mut (*d).all, &mut r.devices);
                list::list_add_tail(&mut (*d).bus_node, &mut (*b).devices);
            }
            DeviceHandle(NonZeroUsize::new(d as usize).ok_or(Errno::ENOMEM)?)
        };
        self.device_attach(h);
        Ok(h)
    }

    /// `device_unregister` (`device_del` + the last `put_device`): unbinds the device (its
    /// driver's remove, then its managed resources), releases resources added outside a
    /// probe, and frees it. `EBUSY` while its probe or remove runs.
    pub fn device_unregister(&self, h: DeviceHandle) -> Result<(), Errno> {
        self.device_release_driver(h)?;
        let d = {
            // Lock order: device_model_lock (rank 0).
            let r = self.dev.reg.lock();
            let d = self.find_device(&r, h).ok_or(Errno::ENODEV)?;
            // SAFETY: `d` is live and its links are ours to change under the lock.
            unsafe {
                if (*d).busy || !(*d).driver.is_null() {
                    return Err(Errno::EBUSY);
                }
                list::list_del_init(&mut (*d).deferred);
                list::list_del(&mut (*d).bus_node);
                list::list_del(&mut (*d).all);
            }
            d
        };
        // Unreachable from the registry now: ours alone. `device_release` →
        // `devres_release_all` for what was added outside a probe.
        self.devres_release_all(d);
        // SAFETY: `d` is unlinked from every list and no other thread can find it; its name
        // and block are freed once, here.
        unsafe {
            self.free_kname((*d).name);
            self.kfree(d.cast::<u8>());
        }
        Ok(())
    }

    /// `driver_register`: a driver named `name` on `bus`, bound at once to every unbound
    /// matching device (`driver_attach`). `EBUSY` if the bus has a driver of that name
    /// (Linux: "Error: Driver '%s' is already registered, aborting..."), `ENODEV` for an
    /// unknown bus.
    pub fn driver_register(
        &self,
        name: &str,
        bus: &str,
        ops: &'static dyn DriverOps<P>,
    ) -> Result<DriverHandle, Errno> {
        if name.is_empty() || name.contains('/') {
            return Err(Errno::EINVAL);
        }
        let h = {
            // Lock order: device_model_lock (rank 0), then the allocator's locks.
            let r = self.dev.reg.lock();
            let b = self.find_bus(&r, bus).ok_or(Errno::ENODEV)?;
            // SAFETY: a live bus; its driver list is stable under the lock.
            let dup = unsafe {
                links(&(*b).drivers)
                    .map(|l| kds::container_of!(l, Driver<P>, link))
                    .any(|d| (*d).name.as_str() == name)
            };
            if dup {
                self.printk(
                    LogLevel::Err,
                    format_args!("Error: Driver '{name}' is already registered, aborting..."),
                );
                return Err(Errno::EBUSY);
            }
            let kn = self.kname(name).ok_or(Errno::ENOMEM)?;
            let Some(p) = self.kmalloc(core::mem::size_of::<Driver<P>>(), GfpFlags::GFP_KERNEL)
            else {
                self.free_kname(kn);
                return Err(Errno::ENOMEM);
            };
            let drv = p.as_ptr().cast::<Driver<P>>();
            // SAFETY: a fresh block of Driver's size and alignment, written whole before it is
            // linked (under the lock).
            unsafe {
                drv.write(Driver {
                    link: ListHead::new(),
                    devices: ListHead::new(),
                    bus: b,
                    ops,
                    name: kn,
                });
                ListHead::init(&mut (*drv).devices);
                list::list_add_tail(&mut (*drv).link, &mut (*b).drivers);
            }
            DriverHandle(NonZeroUsize::new(drv as usize).ok_or(Errno::ENOMEM)?)
        };
        self.driver_attach(h);
        Ok(h)
    }

    /// `driver_unregister`: unbinds every device bound to the driver, then removes it.
    pub fn driver_unregister(&self, h: DriverHandle) -> Result<(), Errno> {
        loop {
            // Lock order: device_model_lock (rank 0).
            let r = self.dev.reg.lock();
            let drv = self.find_driver(&r, h).ok_or(Errno::ENODEV)?;
            // SAFETY: a live driver; its device list is stable under the lock, entries are
            // bound devices' `drv_node`.
            let first = unsafe { list::list_first(&(*drv).devices) };
            let Some(l) = first else { break };
            let d = kds::container_of!(l, Device<P>, drv_node);
            drop(r);
            self.device_release_driver(DeviceHandle(
                NonZeroUsize::new(d as usize).ok_or(Errno::ENODEV)?,
            ))?;
        }
        // Lock order: device_model_lock (rank 0).
        let r = self.dev.reg.lock();
        let drv = self.find_driver(&r, h).ok_or(Errno::ENODEV)?;
        // SAFETY: a live driver with no bound device (a device being probed by it is busy and
        // points at it: refuse then); unlinked under the lock, freed once.
        unsafe {
            let probing = links(&r.devices)
                .map(|l| kds::container_of!(l, Device<P>, all))
                .any(|d| (*d).driver == drv);
            if probing {
                return Err(Errno::EBUSY);
            }
            list::list_del(&mut (*drv).link);
            self.free_kname((*drv).name);
        }
        drop(r);
        self.kfree(drv.cast::<u8>());
        Ok(())
    }

    /// `device_attach`: probes an unbound device with the first matching driver of its bus.
    /// Returns whether it is bound afterwards.
    pub fn device_attach(&self, h: DeviceHandle) -> bool {
        let candidates = {
            // Lock order: device_model_lock (rank 0).
            let r = self.dev.reg.lock();
            let Some(d) = self.find_device(&r, h) else {
                return false;
            };
            // SAFETY: live device and bus; lists stable under the lock.
            unsafe {
                if !(*d).driver.is_null() || (*d).busy {
                    return !(*d).driver.is_null();
                }
                let mut n = 0usize;
                for l in links(&(*(*d).bus).drivers) {
                    let drv = kds::container_of!(l, Driver<P>, link);
                    if names_match((*drv).name.as_str(), (*d).name.as_str()) {
                        n += 1;
                    }
                }
                n
            }
        };
        // Try the matching drivers in registration order; the list may change between tries
        // (each probe runs unlocked), so the i-th match is looked up again each time.
        for i in 0..candidates {
            let drv = {
                // Lock order: device_model_lock (rank 0).
                let r = self.dev.reg.lock();
                let Some(d) = self.find_device(&r, h) else {
                    return false;
                };
                // SAFETY: `d` was found under `reg`, which we hold again: devices and drivers are
                // freed only under this lock, so `d`, its bus and every driver on the bus's list
                // are live, and the list cannot change while we walk it.
                unsafe {
                    links(&(*(*d).bus).drivers)
                        .map(|l| kds::container_of!(l, Driver<P>, link))
                        .filter(|&drv| names_match((*drv).name.as_str(), (*d).name.as_str()))
                        .nth(i)
                }
            };
            let Some(drv) = drv else { break };
            match self.really_probe(h, drv) {
                Probe::Bound => return true,
                Probe::Gone => return false,
                Probe::Failed => {}
            }
        }
        false
    }

    /// `driver_attach`: probes every unbound matching device of the driver's bus.
    fn driver_attach(&self, h: DriverHandle) {
        let mut skip = 0usize;
        loop {
            let next = {
                // Lock order: device_model_lock (rank 0).
                let r = self.dev.reg.lock();
                let Some(drv) = self.find_driver(&r, h) else {
                    return;
                };
                // SAFETY: live driver and bus; lists stable under the lock.
                unsafe {
                    links(&(*(*drv).bus).devices)
                        .map(|l| kds::container_of!(l, Device<P>, bus_node))
                        .filter(|&d| {
                            (*d).driver.is_null()
                                && !(*d).busy
                                && names_match((*drv).name.as_str(), (*d).name.as_str())
                        })
                        .nth(skip)
                        .map(|d| (d, drv))
                }
            };
            let Some((d, drv)) = next else { return };
            let dh = DeviceHandle(NonZeroUsize::new(d as usize).expect("a device address"));
            if self.really_probe(dh, drv) != Probe::Bound {
                // It stays unbound: step past it.
                skip += 1;
            }
        }
    }

    /// Probes the pending deferred devices again (`driver_deferred_probe_trigger`), until a
    /// pass binds none.
    fn deferred_probe_trigger(&self) {
        loop {
            let mut pending: [Option<DeviceHandle>; 16] = [None; 16];
            {
                // Lock order: device_model_lock (rank 0).
                let mut r = self.dev.reg.lock();
                let head: *mut ListHead = &mut r.deferred;
                // SAFETY: the deferred list is stable under the lock; its entries are the
                // `deferred` links of live devices, unlinked here (list_del_init) before the
                // walk moves past them.
                unsafe {
                    let mut i = 0;
                    while i < pending.len() {
                        let Some(l) = list::list_first(head) else {
                            break;
                        };
                        list::list_del_init(l);
                        let d = kds::container_of!(l, Device<P>, deferred);
                        pending[i] = NonZeroUsize::new(d as usize).map(DeviceHandle);
                        i += 1;
                    }
                }
            }
            if pending[0].is_none() {
                return;
            }
            // A device that defers again goes back on the list; stop when no device of
            // this batch could bind (or the loop would retry forever).
            let bound = pending
                .iter()
                .flatten()
                .filter(|&&h| self.device_attach(h))
                .count();
            if bound == 0 {
                return;
            }
        }
    }

    /// `really_probe`: binds `drv` to the device if it is still unbound.
    fn really_probe(&self, h: DeviceHandle, drv: *mut Driver<P>) -> Probe {
        let ops = {
            // Lock order: device_model_lock (rank 0).
            let r = self.dev.reg.lock();
            let Some(d) = self.find_device(&r, h) else {
                return Probe::Gone;
            };
            // SAFETY: `d` is live; `drv` was found under an earlier hold of the lock and a
            // driver is only freed after no device points at it, so checking it is still on
            // its bus before use is enough: it is then live.
            unsafe {
                let on_bus = links(&(*(*d).bus).drivers).any(|l| ptr::eq(l, &(*drv).link));
                if !on_bus || !(*d).driver.is_null() || (*d).busy {
                    return Probe::Failed;
                }
                (*d).driver = drv;
                (*d).busy = true;
                (*drv).ops
            }
        };
        let ret = ops.probe(self, h);
        // Lock order: device_model_lock (rank 0).
        let r = self.dev.reg.lock();
        let Some(d) = self.find_device(&r, h) else {
            return Probe::Gone;
        };
        match ret {
            Ok(()) => {
                // SAFETY: live device and driver (the driver cannot go while a device points
                // at it); lists changed under the lock.
                unsafe {
                    (*d).busy = false;
                    list::list_del_init(&mut (*d).deferred);
                    list::list_add_tail(&mut (*d).drv_node, &mut (*drv).devices);
                }
                drop(r);
                self.deferred_probe_trigger();
                Probe::Bound
            }
            Err(e) => {
                drop(r);
                // drivers/base/dd.c `call_driver_probe`: the failure is logged at once, while
                // the device still names its driver (so dev_err's prefix is the driver's
                // name), before `really_probe`'s `probe_failed` path cleans up.
                if !matches!(e, Errno::EPROBE_DEFER | Errno::ENODEV | Errno::ENXIO) {
                    // SAFETY: `drv` still names this device's driver (the failure path below clears
                    // it), and a driver cannot be unregistered while a device points at it, so the
                    // driver and its name are live though the lock was dropped.
                    let dn = unsafe { (*drv).name.as_str() };
                    self.dev_printk(
                        LogLevel::Err,
                        d,
                        format_args!("probe with driver {dn} failed with error {}", -e.code()),
                    );
                }
                // The probe's managed resources go next, while the device still names its
                // driver (Linux: `devres_release_all` in `device_unbind_cleanup`).
                self.devres_release_all(d);
                // Lock order: device_model_lock (rank 0).
                let mut r = self.dev.reg.lock();
                // SAFETY: `d` is busy, so nobody unregistered it meanwhile; fields and the
                // deferred list are changed under the lock.
                unsafe {
                    (*d).driver = ptr::null_mut();
                    (*d).busy = false;
                    if e == Errno::EPROBE_DEFER {
                        list::list_del_init(&mut (*d).deferred);
                        list::list_add_tail(&mut (*d).deferred, &mut r.deferred);
                    }
                }
                drop(r);
                Probe::Failed
            }
        }
    }

    /// `device_release_driver` (the shell's `device_unbind`): the driver's remove, then the
    /// device's managed resources in reverse order. A device without a driver is left as
    /// it is; `EBUSY` while its probe or remove runs.
    pub fn device_release_driver(&self, h: DeviceHandle) -> Result<(), Errno> {
        let (d, ops) = {
            // Lock order: device_model_lock (rank 0).
            let r = self.dev.reg.lock();
            let d = self.find_device(&r, h).ok_or(Errno::ENODEV)?;
            // SAFETY: a live device; its fields are ours under the lock.
            unsafe {
                if (*d).busy {
                    return Err(Errno::EBUSY);
                }
                let drv = (*d).driver;
                if drv.is_null() {
                    return Ok(());
                }
                (*d).busy = true;
                list::list_del_init(&mut (*d).drv_node);
                (d, (*drv).ops)
            }
        };
        ops.remove(self, h);
        self.devres_release_all(d);
        // Lock order: device_model_lock (rank 0).
        let _r = self.dev.reg.lock();
        // SAFETY: busy kept everyone else off the device; reset under the lock.
        unsafe {
            (*d).driver = ptr::null_mut();
            (*d).busy = false;
        }
        Ok(())
    }

    /// The device's name (`dev_name`).
    pub fn dev_name(&self, h: DeviceHandle, out: &mut dyn Write) -> Result<(), Errno> {
        // SAFETY: a live device (found under the lock) and its name.
        self.with_device(h, |d| unsafe { out.write_str((*d).name.as_str()) })?
            .map_err(|_| Errno::EIO)
    }

    /// The name of the driver bound to the device, written to `out`; `Ok(false)` when none
    /// is bound.
    pub fn dev_driver(&self, h: DeviceHandle, out: &mut dyn Write) -> Result<bool, Errno> {
        self.with_device(h, |d| {
            // SAFETY: a live device; a non-null driver of a device is live.
            unsafe {
                if (*d).driver.is_null() || (*d).busy {
                    return Ok(false);
                }
                out.write_str((*(*d).driver).name.as_str()).map(|()| true)
            }
        })?
        .map_err(|_| Errno::EIO)
    }

    /// The registered device whose `struct device` is at `addr`, if any.
    pub fn device_handle(&self, addr: usize) -> Option<DeviceHandle> {
        let h = DeviceHandle(NonZeroUsize::new(addr)?);
        self.with_device(h, |_| h).ok()
    }

    /// The device named `name` on `bus` (`bus_find_device_by_name`).
    pub fn bus_find_device_by_name(&self, bus: &str, name: &str) -> Option<DeviceHandle> {
        // Lock order: device_model_lock (rank 0).
        let r = self.dev.reg.lock();
        let b = self.find_bus(&r, bus)?;
        // SAFETY: live bus; its device list is stable under the lock.
        unsafe {
            links(&(*b).devices)
                .map(|l| kds::container_of!(l, Device<P>, bus_node))
                .find(|&d| (*d).name.as_str() == name)
                .and_then(|d| NonZeroUsize::new(d as usize).map(DeviceHandle))
        }
    }

    /// sysfs and debugfs files of the driver core: `/sys/bus/<bus>/devices`,
    /// `/sys/bus/<bus>/drivers` (one name per line, sorted, as `ls -1` shows the directory),
    /// `/sys/bus/<bus>/drivers/<driver>` (the bound devices' links and the `bind`,
    /// `uevent`, `unbind` files), `/sys/kernel/debug/devices_deferred` (`<device>\t<reason>`,
    /// drivers/base/dd.c `deferred_devs_show`). `None` for other paths.
    pub fn dev_sysfs_read(&self, path: &str, out: &mut dyn Write) -> Option<Result<(), Errno>> {
        if path.trim_end_matches('/') == "/sys/kernel/debug/devices_deferred" {
            return Some(self.show_deferred(out));
        }
        let rest = path.strip_prefix("/sys/bus/")?.trim_end_matches('/');
        let mut parts = rest.split('/');
        let bus = parts.next()?;
        let dir = parts.next()?;
        let drv = parts.next();
        if parts.next().is_some() || !matches!(dir, "devices" | "drivers") {
            return None;
        }
        if dir == "devices" && drv.is_some() {
            return None;
        }
        // Lock order: device_model_lock (rank 0).
        let r = self.dev.reg.lock();
        let Some(b) = self.find_bus(&r, bus) else {
            return Some(Err(Errno::ENOENT));
        };
        const NONE: KName = KName {
            ptr: ptr::null(),
            len: 0,
        };
        let mut names = [NONE; 64];
        let mut n = 0usize;
        let mut push = |k: KName| {
            if n < names.len() {
                names[n] = k;
            }
            n += 1;
        };
        let files = ["bind", "uevent", "unbind"].map(|f| KName {
            ptr: f.as_ptr(),
            len: f.len(),
        });
        // SAFETY: live bus, drivers and devices; lists stable under the lock, which is held
        // until the names (owned by the objects, or static) are written.
        unsafe {
            match (dir, drv) {
                ("devices", _) => links(&(*b).devices)
                    .for_each(|l| push((*kds::container_of!(l, Device<P>, bus_node)).name)),
                (_, None) => links(&(*b).drivers)
                    .for_each(|l| push((*kds::container_of!(l, Driver<P>, link)).name)),
                (_, Some(dn)) => {
                    let Some(drv) = links(&(*b).drivers)
                        .map(|l| kds::container_of!(l, Driver<P>, link))
                        .find(|&d| (*d).name.as_str() == dn)
                    else {
                        return Some(Err(Errno::ENOENT));
                    };
                    files.into_iter().for_each(&mut push);
                    links(&(*drv).devices)
                        .for_each(|l| push((*kds::container_of!(l, Device<P>, drv_node)).name));
                }
            }
        }
        let shown = n.min(names.len());
        // SAFETY: every shown name is a live object's name or a static string, under the lock.
        let res = unsafe {
            names[..shown].sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
            names[..shown]
                .iter()
                .try_for_each(|k| writeln!(out, "{}", k.as_str()))
                .and_then(|()| {
                    if n > shown {
                        writeln!(out, "... {} more", n - shown)
                    } else {
                        Ok(())
                    }
                })
        };
        drop(r);
        Some(res.map_err(|_| Errno::EIO))
    }

    fn show_deferred(&self, out: &mut dyn Write) -> Result<(), Errno> {
        // Lock order: device_model_lock (rank 0).
        let r = self.dev.reg.lock();
        // SAFETY: the deferred list is stable under the lock; entries are live devices.
        unsafe {
            for l in links(&r.deferred) {
                let d = kds::container_of!(l, Device<P>, deferred);
                writeln!(out, "{}\t", (*d).name.as_str()).map_err(|_| Errno::EIO)?;
            }
        }
        Ok(())
    }
}

/// How a probe ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    Bound,
    Failed,
    /// The device was unregistered meanwhile.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::names_match;

    #[test]
    fn drivers_match_their_devices_and_instances() {
        assert!(names_match("camera", "camera"));
        assert!(names_match("camera", "camera0"));
        assert!(names_match("camera", "camera.12"));
        assert!(!names_match("camera", "camerax"));
        assert!(!names_match("camera", "camera."));
        assert!(!names_match("camera0", "camera"));
        assert!(!names_match("cam", "camera0"));
    }
}
