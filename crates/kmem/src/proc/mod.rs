//! The /proc and debugfs files a machine can show, by path: every renderer is here or in a
//! submodule ([`vmstat`]: buddyinfo, pagetypeinfo, zoneinfo; [`meminfo`]), except the lines
//! whose format belongs to their subsystem (`/proc/slabinfo` lines in [`crate::slab::common`],
//! `/proc/vmallocinfo` in [`crate::vmalloc`]), which this module calls.

#![forbid(unsafe_code)]

pub mod compaction;
pub mod meminfo;
mod memory;
mod mempolicy;
mod node;
pub mod pageowner;
pub mod pid;
mod slab_sysfs;
pub mod vmstat;

use core::fmt::{self, Write};

use crate::base::DevLayer;
use crate::errno::Errno;
use crate::platform::Platform;
use crate::slab::kmemleak::report::AddrXlate;
use crate::slab::kmemleak::KmemleakError;
use crate::vmalloc::VmLayer;

/// Errors of [`VmLayer::proc_read`] and [`VmLayer::proc_write`].
#[derive(Debug)]
pub enum ProcError {
    /// No such file (`ENOENT`).
    NotFound,
    /// The writer failed.
    Fmt(fmt::Error),
    /// The call failed with this error (`EACCES` for a file whose mode forbids it, `EINVAL`
    /// for text a writable file refuses, …); shown as `strerror` text.
    Errno(Errno),
}

impl fmt::Display for ProcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcError::NotFound => f.write_str("No such file or directory"),
            ProcError::Fmt(_) => f.write_str("write error"),
            ProcError::Errno(e) => f.write_str(e.text()),
        }
    }
}

impl From<Errno> for ProcError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::ENOENT => ProcError::NotFound,
            e => ProcError::Errno(e),
        }
    }
}

impl From<fmt::Error> for ProcError {
    fn from(e: fmt::Error) -> Self {
        ProcError::Fmt(e)
    }
}

/// The files kmem provides (for listings and completion).
pub const PROC_FILES: &[&str] = &[
    "/proc/buddyinfo",
    "/proc/pagetypeinfo",
    "/proc/zoneinfo",
    "/proc/meminfo",
    "/proc/slabinfo",
    "/proc/iomem",
    "/proc/vmallocinfo",
    "/sys/kernel/debug/memblock/memory",
    "/sys/kernel/debug/memblock/reserved",
    "/sys/kernel/debug/rcu/rcugp",
];

impl<P: Platform> DevLayer<P> {
    /// Reads a file: the driver core's sysfs and debugfs files ([`DevLayer::dev_sysfs_read`]),
    /// then everything the task layer's `proc_read` shows (`/proc/PID/…`, then the memory
    /// layers' files).
    pub fn proc_read(&self, path: &str, out: &mut dyn Write) -> Result<(), ProcError> {
        match self.dev_sysfs_read(path, out) {
            Some(r) => r.map_err(ProcError::from),
            None => self.task.proc_read(path, out),
        }
    }
}

impl<P: Platform> VmLayer<P> {
    /// Writes the file at `path` (`/proc/buddyinfo`, …; the `/proc/` prefix is optional).
    ///
    /// # Errors
    /// [`ProcError::NotFound`] for an unknown path.
    pub fn proc_read(&self, path: &str, out: &mut dyn Write) -> Result<(), ProcError> {
        let p = path.strip_prefix("/proc/").unwrap_or(path);
        if let Some(r) = self.cma_file_read(path, out) {
            return r.map_err(ProcError::from);
        }
        if let Some(r) = self.memory_sysfs_read(path, out) {
            return r;
        }
        if let Some(r) = self.node_sysfs_read(path, out) {
            return r;
        }
        if let Some(r) = self.slab_sysfs_read(path, out) {
            return r;
        }
        let mode = self.proc_mode(path).ok_or(ProcError::NotFound)?;
        if mode & 0o444 == 0 {
            return Err(ProcError::Errno(Errno::EACCES));
        }
        match p {
            "buddyinfo" => self.show_buddyinfo(out)?,
            "pagetypeinfo" => self.show_pagetypeinfo(out)?,
            "zoneinfo" => self.show_zoneinfo(out)?,
            "meminfo" => self.show_meminfo(out)?,
            "slabinfo" => self.show_slabinfo(out)?,
            "iomem" => self.show_iomem(out)?,
            "vmallocinfo" => self.show_vmallocinfo(out)?,
            "/sys/kernel/debug/memblock/memory" | "sys/kernel/debug/memblock/memory" => {
                self.show_memblock(out, false)?
            }
            "/sys/kernel/debug/memblock/reserved" | "sys/kernel/debug/memblock/reserved" => {
                self.show_memblock(out, true)?
            }
            "/sys/kernel/debug/rcu/rcugp" | "sys/kernel/debug/rcu/rcugp" => self.show_rcugp(out)?,
            "/sys/kernel/debug/kfence/stats" | "sys/kernel/debug/kfence/stats" => {
                self.show_kfence_stats(out)?
            }
            "/sys/kernel/debug/kfence/objects" | "sys/kernel/debug/kfence/objects" => {
                self.show_kfence_objects(out)?
            }
            "sys/kernel/kmemcheck" => writeln!(out, "{}", self.kmemcheck_enabled().unwrap_or(0))?,
            "/sys/kernel/debug/kmemleak" | "sys/kernel/debug/kmemleak" => {
                let (model, real) = self.kmemleak_xlate();
                self.kmemleak_show(
                    out,
                    &AddrXlate {
                        model: &model,
                        real: &real,
                    },
                )?
            }
            _ => return Err(ProcError::NotFound),
        }
        Ok(())
    }

    /// The mode of the file at `path` (as `ls -l` shows it), or `None` when there is no such
    /// file (`/proc/slabinfo` under SLOB). kmem's shell is root, but like a shell it
    /// honours the mode: no write bit means writing fails with `EACCES`.
    pub fn proc_mode(&self, path: &str) -> Option<u16> {
        if let Some(m) = self
            .memory_sysfs_mode(path)
            .or_else(|| self.node_sysfs_mode(path))
            .or_else(|| self.slab_sysfs_mode(path))
        {
            return Some(m);
        }
        let p = path.strip_prefix("/proc/").unwrap_or(path);
        match p {
            "buddyinfo" | "zoneinfo" | "meminfo" | "iomem" => Some(0o444),
            // mm/vmstat.c `proc_create_seq("pagetypeinfo", 0400, ..)`, mm/vmalloc.c
            // `proc_create_seq_private("vmallocinfo", 0400, ..)`.
            "pagetypeinfo" | "vmallocinfo" => Some(0o400),
            "slabinfo" => self.slabinfo_mode(),
            "/sys/kernel/debug/memblock/memory"
            | "sys/kernel/debug/memblock/memory"
            | "/sys/kernel/debug/memblock/reserved"
            | "sys/kernel/debug/memblock/reserved"
            | "/sys/kernel/debug/rcu/rcugp"
            | "sys/kernel/debug/rcu/rcugp" => Some(0o444),
            // mm/kfence/core.c `kfence_debugfs_init`: only while KFENCE runs;
            // `debugfs_create_file("stats", 0444, …)`, `("objects", 0400, …)`.
            "/sys/kernel/debug/kfence/stats" | "sys/kernel/debug/kfence/stats" => {
                self.kfence_pool().map(|_| 0o444)
            }
            "/sys/kernel/debug/kfence/objects" | "sys/kernel/debug/kfence/objects" => {
                self.kfence_pool().map(|_| 0o400)
            }
            // mm/kmemleak.c `debugfs_create_file("kmemleak", 0644, …)`.
            "/sys/kernel/debug/kmemleak" | "sys/kernel/debug/kmemleak" => Some(0o644),
            // kernel/sysctl.c (4.14) `kern_table`'s "kmemcheck", mode 0644, when kmemcheck is
            // built into this boot (`kmemcheck=1|2`).
            "sys/kernel/kmemcheck" => self.kmemcheck_enabled().map(|_| 0o644),
            _ => None,
        }
    }

    /// A write of `text` to the file at `path` (`echo TEXT > /proc/slabinfo`).
    ///
    /// # Errors
    /// [`ProcError::NotFound`] for an unknown path; `EACCES` for a file whose mode has no
    /// write bit; the file's own errors (`EINVAL` for text it refuses).
    pub fn proc_write(&self, path: &str, text: &str) -> Result<(), ProcError> {
        if let Some(r) = self.memory_sysfs_write(path, text, &|nr| self.offline_memory_block(nr)) {
            return r;
        }
        if let Some(r) = self.slab_sysfs_write(path, text) {
            return r;
        }
        let p = path.strip_prefix("/proc/").unwrap_or(path);
        let mode = self.proc_mode(path).ok_or(ProcError::NotFound)?;
        if mode & 0o222 == 0 {
            return Err(ProcError::Errno(Errno::EACCES));
        }
        match p {
            "slabinfo" => Ok(self.slabinfo_write(text)?),
            // `proc_dointvec`: one integer (any value; 2 is one-shot, non-zero is on).
            "sys/kernel/kmemcheck" => {
                let v = text
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| ProcError::Errno(Errno::EINVAL))?;
                self.set_kmemcheck_enabled(v);
                Ok(())
            }
            "/sys/kernel/debug/kmemleak" | "sys/kernel/debug/kmemleak" => {
                self.kmemleak_write_roots(text, &[])
            }
            _ => Err(ProcError::Errno(Errno::EIO)),
        }
    }

    /// A write to `/sys/kernel/debug/kmemleak` with `roots`, the writer's stack values
    /// (a front end's variables), scanned by `scan` unless `stack=off`.
    ///
    /// # Errors
    /// `EPERM` when kmemleak is off, `EINVAL` for text it refuses.
    pub fn kmemleak_write_roots(&self, text: &str, roots: &[usize]) -> Result<(), ProcError> {
        let (model, real) = self.kmemleak_xlate();
        let x = AddrXlate {
            model: &model,
            real: &real,
        };
        self.kmemleak_write(text, roots, &x).map_err(|e| match e {
            KmemleakError::Disabled => ProcError::Errno(Errno::EPERM),
            KmemleakError::Invalid => ProcError::Errno(Errno::EINVAL),
        })
    }

    /// The address translations kmemleak's file shows and reads addresses with.
    fn kmemleak_xlate(
        &self,
    ) -> (
        impl Fn(usize) -> u64 + '_,
        impl Fn(u64) -> Option<usize> + '_,
    ) {
        (
            move |a: usize| self.kva_to_model(crate::addr::VirtAddr::new(a)),
            move |m: u64| self.from_model(m),
        )
    }

    /// `/proc/iomem`: the kernel's e820 table (the firmware map after `trim_bios_range`) as
    /// resources, with the kernel image's sections under the RAM holding them.
    pub fn show_iomem(&self, out: &mut dyn Write) -> fmt::Result {
        for e in self.e820().entries() {
            let name = match e.kind {
                crate::arch::E820Type::Ram => "System RAM",
                crate::arch::E820Type::Acpi => "ACPI Tables",
                crate::arch::E820Type::Nvs => "ACPI Non-volatile Storage",
                crate::arch::E820Type::Unusable => "Unusable memory",
                crate::arch::E820Type::Reserved => "Reserved",
            };
            writeln!(
                out,
                "{:08x}-{:08x} : {}",
                e.addr.as_u64(),
                e.end() - 1,
                name
            )?;
            if e.kind != crate::arch::E820Type::Ram {
                continue;
            }
            // The kernel image's resources under the RAM holding them (setup_arch:
            // code_resource, rodata_resource, data_resource, bss_resource), indented as
            // children are by r_show.
            for (name, s, len) in self.kernel_image_resources() {
                if len > 0 && s >= e.addr.as_u64() && s + len <= e.end() {
                    writeln!(out, "  {:08x}-{:08x} : {}", s, s + len - 1, name)?;
                }
            }
        }
        Ok(())
    }

    /// The kernel image's sections as /proc/iomem names them, in link order (text, rodata,
    /// data, init — not a resource — then bss; arch/x86/kernel/vmlinux.lds.S), laid out
    /// back to back from the load address as kmem reserves the image.
    fn kernel_image_resources(&self) -> [(&'static str, u64, u64); 4] {
        let k = self.kernel_image();
        let code = k.start.as_u64();
        let rodata = code + k.code;
        let data = rodata + k.rodata;
        let bss = data + k.rwdata + k.init;
        [
            ("Kernel code", code, k.code),
            ("Kernel rodata", rodata, k.rodata),
            ("Kernel data", data, k.rwdata),
            ("Kernel bss", bss, k.bss),
        ]
    }

    /// debugfs `rcu/rcugp`: grace periods (the `rcu_sched: completed=… gpnum=…` line of the
    /// old CONFIG_TREE_RCU_TRACE file), callbacks and kfree_rcu batches.
    pub fn show_rcugp(&self, out: &mut dyn Write) -> fmt::Result {
        let r = self.rcu_stats();
        let k = self.kfree_rcu_stats();
        // gpnum: the last grace period started (completed + 1 while one is in progress).
        let gpnum = r.completed + u64::from(r.gp_seq & 3 != 0);
        writeln!(
            out,
            "rcu_sched: completed={}  gpnum={}  gp_seq={}",
            r.completed, gpnum, r.gp_seq
        )?;
        writeln!(
            out,
            "callbacks: queued={}  invoked={}  pending={}  barriers={}",
            r.cbs_queued,
            r.cbs_invoked,
            r.cbs_queued - r.cbs_invoked,
            r.barriers
        )?;
        writeln!(
            out,
            "kfree_rcu: objects={}  freed={}  batches={}",
            k.queued, k.freed, k.batches
        )
    }

    /// debugfs `memblock/memory` and `memblock/reserved`.
    pub fn show_memblock(&self, out: &mut dyn Write, reserved: bool) -> fmt::Result {
        self.with_memblock(|mb| {
            let t = if reserved { &mb.reserved } else { &mb.memory };
            // mm/memblock.c memblock_debug_show: "%4d: %pa..%pa ", the node ("%4d " or
            // "%4c " of 'x' when the region has none), then the lowest flag's name.
            for (i, r) in t.regions().iter().enumerate() {
                write!(
                    out,
                    "{:>4}: {:#018x}..{:#018x} ",
                    i,
                    r.base.as_u64(),
                    r.end() - 1
                )?;
                if crate::memblock::numa_valid_node(r.nid) {
                    write!(out, "{:>4} ", r.nid)?;
                } else {
                    write!(out, "{:>4} ", 'x')?;
                }
                writeln!(out, "{}", r.flags.name())?;
            }
            Ok(())
        })
    }
}
