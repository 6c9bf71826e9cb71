//! The booted machine behind every subcommand, and the CLI's only `unsafe`: turning addresses
//! typed by a person into `struct page` pointers and memory accesses, each checked first.
//!
//! Addresses cross this boundary as *model* addresses (what the machine's own layout shows:
//! `0xffff888000123000` on x86_64, `0xc0123000` on i386). [`Kernel`] translates them to host
//! pointers with [`Machine::from_model`] and back with [`Machine::to_model`].
//!
//! The console is captured ([`Console::Capture`]) so that the boot log stays quiet and every
//! kernel message can be written out at the right place in the shell's output
//! ([`Kernel::take_console`]).

use std::cell::Cell;
use std::panic::Location;

use kmem::arch::Arch;
use kmem::platform::LogLevel;
use kmem::{BootParams, Machine, Page, PagePtr, VirtAddr, PAGE_SIZE};
use kmem_hosted::{Clock, Console, HostedConfig, HostedPlatform, ProbeError};

/// How to boot.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// Architecture.
    pub arch: Arch,
    /// Bytes of RAM.
    pub mem: u64,
    /// Online CPUs.
    pub cpus: usize,
    /// The kernel command line.
    pub cmdline: String,
    /// Seed of the platform's random numbers (fixed by default so that sessions repeat).
    pub seed: u64,
    /// The most physical memory the machine may grow to by memory hotplug (`add_memory`), as
    /// QEMU's `-m SIZE,maxmem=MAX`; 0: no growth.
    pub maxmem: u64,
    /// NUMA nodes (`--numa`, `--numa-mem`, `--numa-distance`); default: one node.
    pub numa: NumaOptions,
}

/// The NUMA options of a boot.
#[derive(Clone, Debug, Default)]
pub struct NumaOptions {
    /// Nodes of equal RAM (0 or 1: one node, unless `mem` lists sizes).
    pub nodes: usize,
    /// RAM of each node; the last takes the rest.
    pub mem: Vec<u64>,
    /// Distances, `n * n` row by row; empty: 10 local, 20 remote.
    pub distance: Vec<u8>,
    /// Nodes whose memory the firmware marks hot-pluggable (SRAT's flag): ZONE_MOVABLE at
    /// boot with the kernel's `movable_node` (`--numa-hotplug`).
    pub hotplug: Vec<u32>,
}

/// `--numa-mem`'s list of sizes.
#[derive(Clone, Debug)]
pub struct SizeList(pub Vec<u64>);

/// `--numa-distance`'s matrix.
#[derive(Clone, Debug)]
pub struct Distances(pub Vec<u8>);

/// Parses `1G,3G`.
///
/// # Errors
/// As [`parse_size`], or for more than 8 sizes.
pub fn parse_size_list(s: &str) -> Result<SizeList, String> {
    let v = s
        .split(',')
        .map(parse_size)
        .collect::<Result<Vec<_>, _>>()?;
    if v.len() > kmem::MAX_NUMA_NODES {
        return Err(format!("at most {} NUMA nodes", kmem::MAX_NUMA_NODES));
    }
    Ok(SizeList(v))
}

/// Parses `10,20,20,10` (`;` or whitespace may separate rows).
///
/// # Errors
/// A value that is not a number from 10 to 255, or a count that is not a square.
pub fn parse_distances(s: &str) -> Result<Distances, String> {
    let v = s
        .split([',', ';', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| match t.trim().parse::<u8>() {
            Ok(d) if d >= 10 => Ok(d),
            _ => Err(format!("invalid NUMA distance '{t}' (10 to 255)")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n = (1..=kmem::MAX_NUMA_NODES).find(|n| n * n == v.len());
    if n.is_none() {
        return Err(format!(
            "{} distances: need N*N for N nodes (N <= {})",
            v.len(),
            kmem::MAX_NUMA_NODES
        ));
    }
    Ok(Distances(v))
}

/// The memblks of `--numa`/`--numa-mem` over the RAM of `e820`, and how many.
///
/// # Errors
/// A split that leaves a node under 32 MiB, or sizes beyond RAM.
fn numa_memblks(
    o: &NumaOptions,
    e820: &kmem::arch::E820Table,
    out: &mut [kmem::NumaMemblk; kmem::MAX_NUMA_NODES],
) -> Result<usize, String> {
    let ram: Vec<(u64, u64)> = e820
        .entries()
        .iter()
        .filter(|e| e.kind == kmem::arch::E820Type::Ram)
        .map(|e| (e.addr.as_u64(), e.end()))
        .collect();
    let total: u64 = ram.iter().map(|(s, e)| e - s).sum();
    let mut sizes = [0u64; kmem::MAX_NUMA_NODES];
    // The last node takes the rest: the others must leave it some.
    let asked: u64 = o.mem.iter().rev().skip(1).sum();
    if !o.mem.is_empty() && asked + (32 << 20) > total {
        return Err(format!(
            "--numa-mem: the nodes before the last ask for {}M, the machine has {}M of RAM",
            asked >> 20,
            total >> 20
        ));
    }
    let n = if o.mem.is_empty() {
        kmem::numa::equal_sizes(total, o.nodes, &mut sizes)
    } else {
        sizes[..o.mem.len()].copy_from_slice(&o.mem);
        o.mem.len()
    };
    kmem::numa::split_nodes(&ram, &sizes[..n], out)
        .ok_or_else(|| "NUMA: cannot split RAM into the nodes asked for (each needs 32M)".into())
}

/// A memory access that could not be done; the report has been printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oopsed;

/// A booted machine on the hosted platform.
pub struct Kernel {
    /// The machine.
    pub m: Machine<HostedPlatform>,
    oopses: Cell<usize>,
}

impl Kernel {
    /// Boots a machine; the boot log is in the log buffer (see `dmesg`), not on the console.
    ///
    /// # Errors
    /// A message saying why the machine could not be set up.
    pub fn boot(o: &BootOptions) -> Result<Kernel, String> {
        if o.cpus == 0 || o.cpus > kmem_hosted::NR_CPUS {
            return Err(format!(
                "{} CPUs: the hosted platform supports 1 to {}",
                o.cpus,
                kmem_hosted::NR_CPUS
            ));
        }
        let mut params = BootParams {
            cmdline: &o.cmdline,
            ..BootParams::simulated(o.arch, o.mem, o.cpus).map_err(|e| e.to_string())?
        };
        let mut memblks = [kmem::NumaMemblk {
            nid: 0,
            start: 0,
            end: 0,
        }; kmem::MAX_NUMA_NODES];
        let mut hotpluggable = [false; kmem::MAX_NUMA_NODES];
        let numa_on = o.numa.nodes > 1 || o.numa.mem.len() > 1;
        if !numa_on && !o.numa.hotplug.is_empty() {
            return Err("--numa-hotplug needs --numa or --numa-mem".into());
        }
        if numa_on {
            let n = numa_memblks(&o.numa, &params.e820, &mut memblks)?;
            if !o.numa.distance.is_empty() && o.numa.distance.len() != n * n {
                return Err(format!(
                    "--numa-distance: {} values for {n} nodes (need {})",
                    o.numa.distance.len(),
                    n * n
                ));
            }
            if let Some(&bad) = o.numa.hotplug.iter().find(|&&h| h as usize >= n) {
                return Err(format!(
                    "--numa-hotplug: node {bad}, the machine has {n} nodes"
                ));
            }
            for (b, h) in memblks[..n].iter().zip(hotpluggable.iter_mut()) {
                *h = o.numa.hotplug.contains(&b.nid);
            }
            params.numa = Some(kmem::NumaTopology {
                nr_nodes: n,
                memblks: &memblks[..n],
                distance: &o.numa.distance,
                cpu_to_node: &[],
                hotpluggable: &hotpluggable[..n],
            });
        }
        // Physical memory must cover the firmware map's RAM, rounded up to a page.
        let page = PAGE_SIZE as u64;
        let phys_size = params.e820.ram_end().div_ceil(page) * page;
        kmem_hosted::check_host_memory(kmem_hosted::boot_host_memory(phys_size))?;
        let plat = HostedPlatform::new(HostedConfig {
            phys_size,
            max_phys_size: if o.maxmem > phys_size { o.maxmem } else { 0 },
            console: Console::Capture,
            clock: Clock::Monotonic,
            seed: Some(o.seed),
        })
        .map_err(|e| format!("cannot create the hosted platform: {e}"))?;
        // The memmap in anonymous memory of the process rather than the memfd's shared
        // pages: faulting in a 64 GiB machine's 1 GiB of memmap costs 0.3 s of system time
        // instead of 0.45 s (shmem's page cache insertion per page), the boot 0.55 s instead
        // of FLATMEM's 0.75 s (docs/BENCHMARKS.md "Issue 19, session 6"). The machine's
        // memory is the process's alone here anyway. Not `use_huge_vmemmap`: on a VM with free
        // page reporting the 2 MiB pages come back from the hypervisor 4 KiB at a time.
        plat.use_private_vmemmap();
        // One memfd per node (`kmem-phys-nodeN`), mapped at the node's physical ranges.
        if let Some(t) = &params.numa {
            plat.set_numa_memblks(t.memblks)
                .map_err(|e| format!("cannot give the NUMA nodes their memory: {e}"))?;
        }
        let m = Machine::boot(plat, &params).map_err(|e| format!("boot failed: {e}"))?;
        m.platform().take_captured();
        let k = Kernel {
            m,
            oopses: Cell::new(0),
        };
        if let Some(level) = cmdline_loglevel(&o.cmdline) {
            k.m.set_console_loglevel(level);
        }
        Ok(k)
    }

    /// Takes what the kernel printed on its console since the last call.
    pub fn take_console(&self) -> String {
        self.m.platform().take_captured()
    }

    /// BUG and WARNING reports so far (oopses and slab debugging reports included).
    pub fn reports(&self) -> usize {
        self.m.bug_count()
            + self.m.warn_count()
            + self.m.slab_errors()
            + self.m.kmemcheck_errors() as usize
    }

    /// The host address of a model address, if the machine maps it.
    pub fn real(&self, model: u64) -> Option<usize> {
        self.m.from_model(model)
    }

    /// The model address of a host address (direct map, memmap, vmalloc and kmap windows).
    pub fn model(&self, real: usize) -> u64 {
        self.m.kva_to_model(VirtAddr::new(real))
    }

    /// The host address to hand to an API that validates its argument (free functions): the
    /// translation if there is one, else the value itself (NULL, `ZERO_SIZE_PTR`, foreign
    /// addresses), which such an API reports as not its own.
    pub fn arg_addr(&self, model: u64) -> VirtAddr {
        VirtAddr::new(self.real(model).unwrap_or(model as usize))
    }

    /// The `struct page` at a model address, if it is exactly one of the memmap's entries.
    pub fn page(&self, model: u64) -> Option<PagePtr> {
        let real = self.real(model)?;
        let p = real as *mut Page;
        if !self.m.is_memmap_ptr(p) {
            return None;
        }
        let nn = core::ptr::NonNull::new(p)?;
        // SAFETY: `is_memmap_ptr` checked that `p` is an entry of this live machine's memmap.
        Some(unsafe { PagePtr::from_raw(nn) })
    }

    /// The model address of a `struct page`.
    pub fn page_model(&self, page: PagePtr) -> u64 {
        self.model(page.as_ptr() as usize)
    }

    /// Reads `buf.len()` bytes at model address `addr`.
    ///
    /// # Errors
    /// [`Oopsed`] after printing Linux's page-fault oops when a byte is not mapped.
    #[track_caller]
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Oopsed> {
        self.access(addr, buf.len(), false, |real, range| {
            kmem_hosted::probe_read_bytes(real as *const u8, &mut buf[range])
        })
    }

    /// Writes `data` at model address `addr`.
    ///
    /// Pages the kernel reserved for itself (the memmap, its own state, the image) are treated
    /// as write-protected, as kernel text and read-only data are in Linux: writing them would
    /// corrupt the allocator under the shell's feet.
    ///
    /// # Errors
    /// [`Oopsed`] after printing the oops, at the first byte that could not be written.
    #[track_caller]
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Oopsed> {
        self.access(addr, data.len(), true, |real, range| {
            // SAFETY: `real` is memory of the simulated machine (translated from a model
            // address, and not a page the kernel reserved for its own structures): no Rust
            // reference in this program points into it, and the probe turns a fault into an
            // error instead of a signal.
            unsafe { kmem_hosted::probe_write_bytes(real as *mut u8, &data[range]) }
        })
    }

    /// Walks `[addr, addr + len)` a page at a time, translating each piece.
    #[track_caller]
    fn access(
        &self,
        addr: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(usize, core::ops::Range<usize>) -> Result<(), ProbeError>,
    ) -> Result<(), Oopsed> {
        let mut done = 0usize;
        while done < len {
            let at = addr.wrapping_add(done as u64);
            let chunk = (len - done).min(PAGE_SIZE - (at as usize % PAGE_SIZE));
            let Some(real) = self.real(at).filter(|_| at >= PAGE_SIZE as u64) else {
                self.oops(at, write, false);
                return Err(Oopsed);
            };
            // The chunk must be translated as one piece.
            if self.real(at + chunk as u64 - 1) != Some(real + chunk - 1) {
                self.oops(at, write, false);
                return Err(Oopsed);
            }
            // A KFENCE guard page or freed object's page: what the page-fault handler does
            // (`kfence_handle_page_fault`: report, unprotect, let the access proceed). The
            // pool's pages are memblock-reserved, but they are KFENCE's objects, not the
            // kernel's own structures, so the write check below lets them be.
            let kfence = self.m.is_kfence_address(real as *const u8);
            if kfence && self.m.kfence_protected(real as *const u8) {
                self.m.kfence_handle_page_fault(real as *const u8, write);
            }
            // kmemcheck (`--cmdline kmemcheck=1`): the shadow is consulted directly, as the
            // page-fault handler consults it for a hidden page: a write initialises the
            // bytes, a read of bytes none of which is initialised is reported.
            if self.m.kmemcheck_built() {
                self.m.kmemcheck_access(real as *const u8, chunk, write);
            }
            if write && !kfence {
                // The page behind the address, through the direct map or a vmalloc/vmap
                // mapping (a vmap of a reserved page must not open a way around the check).
                let va = VirtAddr::new(real);
                // The memmap (vmemmap) is backed by reserved pages too.
                let page = self
                    .m
                    .virt_to_page(va)
                    .or_else(|| {
                        self.m
                            .is_vmalloc_addr(va)
                            .then(|| self.m.vmalloc_to_page(va))
                            .flatten()
                    })
                    .or_else(|| self.m.vmemmap_to_page(va));
                if page.is_some_and(|p| self.m.page_ref(p).is_some_and(|r| r.is_reserved())) {
                    self.oops(at, true, true);
                    return Err(Oopsed);
                }
            }
            match f(real, done..done + chunk) {
                Ok(()) => {}
                Err(ProbeError::Fault { addr }) => {
                    self.oops(self.model(addr), write, false);
                    return Err(Oopsed);
                }
                Err(ProbeError::Unsupported(e)) => {
                    self.m.printk(
                        LogLevel::Err,
                        format_args!("kmem: memory probing unsupported by the host (errno {e})"),
                    );
                    return Err(Oopsed);
                }
            }
            done += chunk;
        }
        Ok(())
    }

    /// Prints Linux's page-fault oops (arch/x86/mm/fault.c `show_fault_oops` and
    /// `__die_header`) for a kernel-mode access to `addr`, and counts it as a BUG.
    #[track_caller]
    pub fn oops(&self, addr: u64, write: bool, present: bool) {
        let m = &self.m;
        let w = m.arch().ptr_hex_digits();
        if addr < PAGE_SIZE as u64 {
            m.printk(
                LogLevel::Alert,
                format_args!("BUG: kernel NULL pointer dereference, address: {addr:0w$x}"),
            );
        } else {
            m.printk(
                LogLevel::Alert,
                format_args!("BUG: unable to handle page fault for address: {addr:0w$x}"),
            );
        }
        let kind = if write { "write" } else { "read" };
        m.printk(
            LogLevel::Alert,
            format_args!("#PF: supervisor {kind} access in kernel mode"),
        );
        // X86_PF_PROT (bit 0) and X86_PF_WRITE (bit 1) of the error code.
        let code = u32::from(present) | (u32::from(write) << 1);
        let why = if present {
            "permissions violation"
        } else {
            "not-present page"
        };
        m.printk(
            LogLevel::Alert,
            format_args!("#PF: error_code({code:#06x}) - {why}"),
        );
        let n = self.oopses.get() + 1;
        self.oopses.set(n);
        m.printk(
            LogLevel::Warning,
            format_args!("Oops: {code:04x} [#{n}] SMP"),
        );
        m.count_bug();
        m.dump_stack(LogLevel::Warning, Location::caller());
    }
}

/// The console log level the command line asks for: `quiet` (4) or `loglevel=N`
/// (kernel/printk/printk.c), the last one winning.
pub fn cmdline_loglevel(cmdline: &str) -> Option<u8> {
    let mut level = None;
    for w in cmdline.split_whitespace() {
        if w == "quiet" {
            level = Some(kmem::mm::printk::CONSOLE_LOGLEVEL_QUIET);
        } else if let Some(v) = w.strip_prefix("loglevel=") {
            if let Ok(v) = v.parse::<u8>() {
                level = Some(v.min(15));
            }
        } else if w == "debug" {
            level = Some(10);
        }
    }
    level
}

/// Parses a size with an optional `K`, `M`, `G` or `T` suffix (powers of 1024; `KiB`, `KB`
/// and lower case accepted).
///
/// # Errors
/// A message naming the bad text.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!(
            "invalid size '{s}' (expected e.g. 512M, 1G, 65536K)"
        ));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("size '{s}' is too large"))?;
    let unit = t[digits..].to_ascii_lowercase();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("invalid size suffix in '{s}' (use K, M, G or T)")),
    };
    match n.checked_mul(1 << shift) {
        Some(0) => Err(format!("size '{s}' is zero")),
        Some(v) => Ok(v),
        None => Err(format!("size '{s}' is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("65536K"), Ok(65536 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("G").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_size("0"), Err("size '0' is zero".to_string()));
    }

    #[test]
    fn loglevel_from_cmdline() {
        assert_eq!(cmdline_loglevel(""), None);
        assert_eq!(cmdline_loglevel("quiet"), Some(4));
        assert_eq!(cmdline_loglevel("quiet loglevel=7"), Some(7));
    }
}
