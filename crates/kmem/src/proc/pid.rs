//! `/proc/PID/*` (fs/proc/task_mmu.c, fs/proc/array.c, fs/proc/base.c): `maps`, `smaps`,
//! `smaps_rollup`, `status`, `oom_score_adj`, and `/proc/vmstat`'s process-memory lines.
//!
//! [`TaskLayer::proc_read`] serves these and hands every other path to the layers below
//! ([`crate::vmalloc::VmLayer::proc_read`]).

#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use super::ProcError;
use crate::errno::Errno;
use crate::memory::MemoryLayer;
use crate::mm::mm_types::pg;
use crate::mm::VmEvent;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::task::{TaskLayer, TaskMm};
use crate::vma::{MmCounter, MmStruct, VmAreaStruct, VmBacking, VmFlags, PAGE, VM_FLAG_MNEMONICS};

mod numa_maps;

/// The files under `/proc/PID/`.
pub const PID_FILES: &[&str] = &[
    "maps",
    "numa_maps",
    "smaps",
    "smaps_rollup",
    "status",
    "oom_score",
    "oom_score_adj",
];

/// Splits `/proc/PID/FILE` (or `PID/FILE`).
fn split_pid_path(path: &str) -> Option<(i32, &str)> {
    let p = path.strip_prefix("/proc/").unwrap_or(path);
    let (pid, file) = p.split_once('/')?;
    let pid: i32 = pid.parse().ok()?;
    Some((pid, file))
}

/// Counts characters written, to pad as `seq_pad` does.
struct Counting<'a> {
    out: &'a mut dyn Write,
    n: usize,
}

impl Write for Counting<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.n += s.len();
        self.out.write_str(s)
    }
}

/// A short name, built in place.
pub(super) struct NameBuf {
    buf: [u8; 300],
    len: usize,
}

impl NameBuf {
    pub(super) fn new() -> Self {
        Self {
            buf: [0; 300],
            len: 0,
        }
    }
    pub(super) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl Write for NameBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// What `show_map_vma` prints for a shmem VMA: the file's name (`d_path` of an unlinked
/// tmpfs file) and its inode number.
pub(super) fn shmem_name<P: Platform>(l: &MemoryLayer<P>, ino: u64, out: &mut NameBuf) {
    use crate::memory::shmem::ShmKind;
    let _ = match l.shmem_info(ino).map(|i| i.kind) {
        Some(ShmKind::Memfd) => {
            let mut b = [0u8; 32];
            let n = l.shmem_name(ino, &mut b);
            write!(
                out,
                "/memfd:{} (deleted)",
                core::str::from_utf8(&b[..n]).unwrap_or("?")
            )
        }
        Some(ShmKind::SysV { key, .. }) => write!(out, "/SYSV{:08x} (deleted)", key as u32),
        _ => write!(out, "/dev/zero (deleted)"),
    };
}

/// The name `show_map_vma` gives an anonymous VMA, if any.
pub(super) fn vma_name(mm: &MmStruct, v: &VmAreaStruct) -> Option<&'static str> {
    // vma_is_initial_heap / vma_is_initial_stack
    if v.vm_start <= mm.brk && v.vm_end >= mm.start_brk {
        return Some("[heap]");
    }
    if v.vm_start <= mm.start_stack && v.vm_end >= mm.start_stack {
        return Some("[stack]");
    }
    None
}

/// `show_vma_header_prefix` + name: one line of `maps` (`seq_setwidth(25 + 6 *
/// sizeof(void *) - 1)`, then `seq_pad(' ')` before the name).
fn map_line(
    out: &mut dyn Write,
    wide: bool,
    start: u64,
    end: u64,
    perms: &str,
    file: Option<(u64, u64)>,
    name: Option<&str>,
) -> fmt::Result {
    let mut c = Counting { out, n: 0 };
    // A shmem file: tmpfs's internal mount is device 00:01; offset = vm_pgoff << PAGE_SHIFT.
    let (off, minor, ino) = file.map_or((0, 0, 0), |(pgoff, ino)| (pgoff * PAGE, 1, ino));
    write!(
        c,
        "{start:08x}-{end:08x} {perms} {off:08x} {:02x}:{:02x} {ino} ",
        0, minor
    )?;
    if let Some(name) = name {
        let width: usize = 25 + if wide { 48 } else { 24 } - 1;
        let pad = width.saturating_sub(c.n);
        write!(c, "{:pad$} {name}", "")?;
    }
    c.write_str("\n")
}

fn perms(f: VmFlags) -> [u8; 4] {
    [
        if f.contains(VmFlags::VM_READ) {
            b'r'
        } else {
            b'-'
        },
        if f.contains(VmFlags::VM_WRITE) {
            b'w'
        } else {
            b'-'
        },
        if f.contains(VmFlags::VM_EXEC) {
            b'x'
        } else {
            b'-'
        },
        if f.contains(VmFlags::VM_MAYSHARE) {
            b's'
        } else {
            b'p'
        },
    ]
}

/// `struct mem_size_stats` (bytes; pss in bytes << PSS_SHIFT).
#[derive(Default)]
struct Mss {
    resident: u64,
    pss: u64,
    pss_dirty: u64,
    pss_anon: u64,
    pss_shmem: u64,
    shared_clean: u64,
    shared_dirty: u64,
    private_clean: u64,
    private_dirty: u64,
    referenced: u64,
    anonymous: u64,
    lazyfree: u64,
    swap: u64,
}

/// `PSS_SHIFT`.
const PSS_SHIFT: u32 = 12;

impl<P: Platform> MemoryLayer<P> {
    /// `smap_gather_stats` for `[start, end)` of `mm` into `mss` (`smaps_pte_entry` +
    /// `smaps_account`).
    fn smap_gather(&self, mm: &MmStruct, start: u64, end: u64, mss: &mut Mss) {
        let Some(pt) = mm.pgd.as_ref() else { return };
        let fmt = pt.format();
        let mem = self.pt_mem();
        let mut va = start;
        while va < end {
            let pte = pt.pte_get(mem, va);
            va += PAGE;
            if pte == 0 {
                continue;
            }
            if pte & PteFlags::PRESENT.0 == 0 {
                mss.swap += PAGE;
                continue;
            }
            if self.is_zero_pte(fmt, pte) {
                continue;
            }
            let Some(page) = self.pte_page(fmt, pte) else {
                continue;
            };
            mss.resident += PAGE;
            let anon = self.page_is_anon(page);
            let dirty = pte & PteFlags::DIRTY.0 != 0;
            if anon {
                mss.anonymous += PAGE;
                // smaps_account: lazily freeable while neither the PTE nor the page is dirty.
                if !page.test_flag(pg::SWAPBACKED) && !dirty && !page.test_flag(pg::DIRTY) {
                    mss.lazyfree += PAGE;
                }
            }
            if pte & PteFlags::ACCESSED.0 != 0 {
                mss.referenced += PAGE;
            }
            let mapcount = self.page_mapcount(page).max(1) as u64;
            let pss = (PAGE << PSS_SHIFT) / mapcount;
            mss.pss += pss;
            if anon {
                mss.pss_anon += pss;
            } else {
                mss.pss_shmem += pss;
            }
            match (mapcount >= 2, dirty) {
                (true, true) => mss.shared_dirty += PAGE,
                (true, false) => mss.shared_clean += PAGE,
                (false, true) => mss.private_dirty += PAGE,
                (false, false) => mss.private_clean += PAGE,
            }
            if dirty {
                mss.pss_dirty += pss;
            }
        }
    }
}

/// `SEQ_PUT_DEC`: a 16-character label, the value in kB right-aligned in 8.
fn dec(out: &mut dyn Write, label: &str, bytes: u64) -> fmt::Result {
    writeln!(out, "{label:<16}{:>8} kB", bytes >> 10)
}

/// `__show_smap`.
fn show_smap(out: &mut dyn Write, mss: &Mss, rollup: bool) -> fmt::Result {
    dec(out, "Rss:", mss.resident)?;
    dec(out, "Pss:", mss.pss >> PSS_SHIFT)?;
    dec(out, "Pss_Dirty:", mss.pss_dirty >> PSS_SHIFT)?;
    if rollup {
        dec(out, "Pss_Anon:", mss.pss_anon >> PSS_SHIFT)?;
        dec(out, "Pss_File:", 0)?;
        dec(out, "Pss_Shmem:", mss.pss_shmem >> PSS_SHIFT)?;
    }
    dec(out, "Shared_Clean:", mss.shared_clean)?;
    dec(out, "Shared_Dirty:", mss.shared_dirty)?;
    dec(out, "Private_Clean:", mss.private_clean)?;
    dec(out, "Private_Dirty:", mss.private_dirty)?;
    dec(out, "Referenced:", mss.referenced)?;
    dec(out, "Anonymous:", mss.anonymous)?;
    dec(out, "KSM:", 0)?;
    dec(out, "LazyFree:", mss.lazyfree)?;
    dec(out, "AnonHugePages:", 0)?;
    dec(out, "ShmemPmdMapped:", 0)?;
    dec(out, "FilePmdMapped:", 0)?;
    dec(out, "Shared_Hugetlb:", 0)?;
    writeln!(out, "Private_Hugetlb: {:>7} kB", 0)?;
    dec(out, "Swap:", mss.swap)?;
    dec(out, "SwapPss:", mss.swap)?;
    dec(out, "Locked:", 0)
}

impl<P: Platform> TaskLayer<P> {
    /// Writes the file at `path`: `/proc/PID/{maps,smaps,smaps_rollup,status,oom_score_adj}`
    /// here, every other file by the layers below.
    ///
    /// # Errors
    /// [`ProcError::NotFound`] for an unknown path or a pid with no task.
    pub fn proc_read(&self, path: &str, out: &mut dyn Write) -> Result<(), ProcError> {
        if let Some(r) = self.compaction_proc_read(path, out) {
            return r;
        }
        if let Some(r) = self.mempolicy_sysfs_read(path, out) {
            return r;
        }
        let Some((pid, file)) = split_pid_path(path) else {
            if matches!(path.strip_prefix("/proc/").unwrap_or(path), "vmstat") {
                return Ok(self.show_vmstat(out)?);
            }
            if matches!(path.strip_prefix("/proc/").unwrap_or(path), "swaps") {
                return Ok(self.show_swaps(out)?);
            }
            return self.mem.km.vm.proc_read(path, out);
        };
        if !PID_FILES.contains(&file) {
            return Err(ProcError::NotFound);
        }
        self.with_task(pid, |t| -> Result<(), ProcError> {
            match file {
                "maps" => show_maps(t, out)?,
                "numa_maps" => numa_maps::show_numa_maps(t, out)?,
                "smaps" => show_smaps(t, out)?,
                "smaps_rollup" => show_smaps_rollup(t, out)?,
                "status" => show_status(t, out)?,
                "oom_score" => writeln!(out, "{}", oom_score_of(self, &t))?,
                _ => writeln!(out, "{}", t.oom_score_adj)?,
            }
            Ok(())
        })
        .map_err(|_| ProcError::NotFound)?
    }

    /// The mode of the file at `path` (see [`crate::vmalloc::VmLayer::proc_mode`]).
    pub fn proc_mode(&self, path: &str) -> Option<u16> {
        if let Some(m) = self
            .compaction_proc_mode(path)
            .or_else(|| self.mempolicy_sysfs_mode(path))
        {
            return Some(m);
        }
        if let Some((pid, file)) = split_pid_path(path) {
            if !PID_FILES.contains(&file) || self.with_task(pid, |_| ()).is_err() {
                return None;
            }
            // fs/proc/base.c: maps, status 0444; smaps, smaps_rollup 0444; oom_score_adj 0644.
            return Some(if file == "oom_score_adj" {
                0o644
            } else {
                0o444
            });
        }
        match path.strip_prefix("/proc/").unwrap_or(path) {
            "vmstat" | "swaps" => return Some(0o444),
            // kernel/sysctl.c vm_table: drop_caches is 0200.
            "sys/vm/drop_caches" => return Some(0o200),
            _ => {}
        }
        self.mem.km.vm.proc_mode(path)
    }

    /// A write to the file at `path`: `/proc/PID/oom_score_adj` (-1000..=1000) here, every
    /// other file by the layers below.
    ///
    /// # Errors
    /// As [`crate::vmalloc::VmLayer::proc_write`]; `EINVAL` for an `oom_score_adj` out of
    /// range or not a number.
    pub fn proc_write(&self, path: &str, text: &str) -> Result<(), ProcError> {
        if let Some(r) = self.compaction_proc_write(path, text) {
            return r;
        }
        if let Some(r) = self.mempolicy_sysfs_write(path, text) {
            return r;
        }
        let Some((pid, file)) = split_pid_path(path) else {
            if path.strip_prefix("/proc/").unwrap_or(path) == "sys/vm/drop_caches" {
                // fs/drop_caches.c: 1 page cache, 2 slab, 3 both (kmem drops the page
                // cache; slab caches shrink on their own).
                return match text.trim() {
                    "1" | "3" => {
                        self.drop_caches();
                        Ok(())
                    }
                    "2" | "4" => Ok(()),
                    _ => Err(ProcError::Errno(Errno::EINVAL)),
                };
            }
            let vm = &self.mem.km.vm;
            if let Some(r) = vm.memory_sysfs_write(path, text, &|nr| self.offline_memory_block(nr))
            {
                return r;
            }
            return vm.proc_write(path, text);
        };
        match file {
            "oom_score_adj" => {
                let v: i32 = text
                    .trim()
                    .parse()
                    .map_err(|_| ProcError::Errno(Errno::EINVAL))?;
                if !(-1000..=1000).contains(&v) {
                    return Err(ProcError::Errno(Errno::EINVAL));
                }
                let mut t = self.tasklist();
                t.set_oom_score_adj(pid, v as i16)
                    .ok_or(ProcError::NotFound)
            }
            f if PID_FILES.contains(&f) => Err(ProcError::Errno(Errno::EACCES)),
            _ => Err(ProcError::NotFound),
        }
    }

    /// The process-memory lines of `/proc/vmstat`, then nothing else yet: `nr_anon_pages`,
    /// `nr_mapped`, `nr_shmem`, `nr_page_table_pages`, `pswpin`, `pswpout`, `pgactivate`,
    /// `pgdeactivate`, `pglazyfree`, `pgfault`, `pgmajfault`, `pglazyfreed`, `pgrefill`,
    /// `pgsteal_kswapd`, `pgsteal_direct`, `pgscan_kswapd`, `pgscan_direct`, `oom_kill`,
    /// `pgmigrate_success`, `pgmigrate_fail` (mm/vmstat.c `vmstat_text` names, in its order).
    pub fn show_vmstat(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(out, "nr_free_pages {}", self.nr_free_pages())?;
        // NUMA events (vmstat_text's numa_* items, after the zone items) on a NUMA machine; a
        // one-node machine does not count them and prints none.
        if self.nr_online_nodes() > 1 {
            let mut sum = [0usize; 6];
            for nid in 0..self.nr_online_nodes() {
                for (a, b) in sum.iter_mut().zip(self.numa_stat(nid)) {
                    *a += b;
                }
            }
            for (n, v) in super::node::NUMA_VMSTAT_ITEMS.iter().zip(sum) {
                writeln!(out, "{n} {v}")?;
            }
        }
        // The node items (mm/vmstat.c vmstat_text order: NR_LRU_BASE first).
        for (name, w) in super::node::NODE_VMSTAT_ITEMS {
            writeln!(out, "{name} {}", self.node_stat_hook(w))?;
        }
        for (name, e) in [
            ("pswpin", VmEvent::PswpIn),
            ("pswpout", VmEvent::PswpOut),
            ("pgactivate", VmEvent::PgActivate),
            ("pgdeactivate", VmEvent::PgDeactivate),
            ("pglazyfree", VmEvent::PgLazyFree),
            ("pgfault", VmEvent::PgFault),
            ("pgmajfault", VmEvent::PgMajFault),
            ("pglazyfreed", VmEvent::PgLazyFreed),
            ("pgrefill", VmEvent::PgRefill),
            ("pgsteal_kswapd", VmEvent::PgStealKswapd),
            ("pgsteal_direct", VmEvent::PgStealDirect),
            ("pgscan_kswapd", VmEvent::PgScanKswapd),
            ("pgscan_direct", VmEvent::PgScanDirect),
            ("oom_kill", VmEvent::OomKill),
            ("pgmigrate_success", VmEvent::PgMigrateSuccess),
            ("pgmigrate_fail", VmEvent::PgMigrateFail),
        ] {
            writeln!(out, "{name} {}", self.vm_event(e))?;
        }
        self.show_vmstat_compact(out)
    }
}

/// One `maps` line for `v`.
fn show_map_vma<P: Platform>(
    l: &MemoryLayer<P>,
    mm: &MmStruct,
    v: &VmAreaStruct,
    out: &mut dyn Write,
) -> fmt::Result {
    let wide = mm.arch == crate::arch::Arch::X86_64;
    let p = perms(v.vm_flags);
    let p = core::str::from_utf8(&p).unwrap_or("----");
    if let VmBacking::Shmem(ino) = v.backing {
        let mut n = NameBuf::new();
        shmem_name(l, ino, &mut n);
        return map_line(
            out,
            wide,
            v.vm_start,
            v.vm_end,
            p,
            Some((v.vm_pgoff, ino)),
            Some(n.as_str()),
        );
    }
    map_line(out, wide, v.vm_start, v.vm_end, p, None, vma_name(mm, v))
}

/// `/proc/PID/oom_score` (fs/proc/base.c `proc_oom_score`): from `oom_badness` over RAM
/// plus swap (`totalram_pages() + total_swap_pages`).
fn oom_score_of<P: Platform>(tl: &TaskLayer<P>, t: &TaskMm<'_, P>) -> u64 {
    let mm = &*t.mm;
    let o = crate::oom_kill::OomTask {
        pid: t.pid as u32,
        tgid: t.pid as u32,
        uid: 0,
        comm: t.comm,
        total_vm: mm.total_vm as usize,
        rss_anon: mm.rss_stat[1].max(0) as usize,
        rss_file: mm.rss_stat[0].max(0) as usize,
        rss_shmem: mm.rss_stat[3].max(0) as usize,
        pgtables_bytes: t.layer.pgtables_bytes(mm) as usize,
        swapents: mm.rss_stat[2].max(0) as usize,
        oom_score_adj: t.oom_score_adj,
        unkillable: false,
    };
    let total = tl.totalram_pages() + tl.mem.mem.swap.si_swapinfo().total;
    crate::oom_kill::oom_score(&o, total)
}

fn show_maps<P: Platform>(t: TaskMm<'_, P>, out: &mut dyn Write) -> fmt::Result {
    for v in t.mm.vmas() {
        show_map_vma(t.layer, t.mm, v, out)?;
    }
    Ok(())
}

fn show_smaps<P: Platform>(t: TaskMm<'_, P>, out: &mut dyn Write) -> fmt::Result {
    for v in t.mm.vmas() {
        show_map_vma(t.layer, t.mm, v, out)?;
        let mut mss = Mss::default();
        t.layer.smap_gather(t.mm, v.vm_start, v.vm_end, &mut mss);
        dec(out, "Size:", v.len())?;
        dec(out, "KernelPageSize:", PAGE)?;
        dec(out, "MMUPageSize:", PAGE)?;
        show_smap(out, &mss, false)?;
        writeln!(out, "THPeligible:    0")?;
        out.write_str("VmFlags:")?;
        for (f, name) in VM_FLAG_MNEMONICS {
            if v.vm_flags.contains(*f) {
                write!(out, " {name}")?;
            }
        }
        out.write_str(" \n")?;
    }
    Ok(())
}

fn show_smaps_rollup<P: Platform>(t: TaskMm<'_, P>, out: &mut dyn Write) -> fmt::Result {
    let wide = t.mm.arch == crate::arch::Arch::X86_64;
    let mut mss = Mss::default();
    let (mut first, mut last) = (None, 0);
    for v in t.mm.vmas() {
        first.get_or_insert(v.vm_start);
        last = v.vm_end;
        t.layer.smap_gather(t.mm, v.vm_start, v.vm_end, &mut mss);
    }
    map_line(
        out,
        wide,
        first.unwrap_or(0),
        last,
        "---p",
        None,
        Some("[rollup]"),
    )?;
    show_smap(out, &mss, true)
}

fn show_status<P: Platform>(t: TaskMm<'_, P>, out: &mut dyn Write) -> fmt::Result {
    let mm = &*t.mm;
    let kb = |pages: u64| pages * (PAGE / 1024);
    let c = |x: MmCounter| mm.counter(x).max(0) as u64;
    writeln!(out, "Name:\t{}", t.comm)?;
    writeln!(out, "Umask:\t0022")?;
    writeln!(out, "State:\tS (sleeping)")?;
    writeln!(out, "Tgid:\t{}", t.pid)?;
    writeln!(out, "Ngid:\t0")?;
    writeln!(out, "Pid:\t{}", t.pid)?;
    writeln!(out, "PPid:\t{}", t.ppid)?;
    writeln!(out, "TracerPid:\t0")?;
    writeln!(out, "Uid:\t0\t0\t0\t0")?;
    writeln!(out, "Gid:\t0\t0\t0\t0")?;
    writeln!(out, "FDSize:\t64")?;
    writeln!(out, "Groups:\t")?;
    writeln!(out, "NSpid:\t{}", t.pid)?;
    writeln!(out, "NSpgid:\t{}", t.pid)?;
    writeln!(out, "NSsid:\t{}", t.pid)?;
    writeln!(out, "Kthread:\t0")?;
    // task_mem (fs/proc/task_mmu.c): "%8lu kB".
    let rss = mm.rss();
    let lines: [(&str, u64); 16] = [
        ("VmPeak", kb(mm.hiwater_vm.max(mm.total_vm))),
        ("VmSize", kb(mm.total_vm)),
        ("VmLck", 0),
        ("VmPin", 0),
        ("VmHWM", kb(mm.hiwater_rss.max(rss))),
        ("VmRSS", kb(rss)),
        ("RssAnon", kb(c(MmCounter::AnonPages))),
        ("RssFile", kb(c(MmCounter::FilePages))),
        ("RssShmem", kb(c(MmCounter::ShmemPages))),
        ("VmData", kb(mm.data_vm)),
        ("VmStk", kb(mm.stack_vm)),
        ("VmExe", 0),
        ("VmLib", 0),
        ("VmPTE", t.layer.pgtables_bytes(mm) >> 10),
        ("VmSwap", kb(c(MmCounter::SwapEnts))),
        ("HugetlbPages", 0),
    ];
    for (name, v) in lines {
        writeln!(out, "{name}:\t{v:>8} kB")?;
    }
    writeln!(out, "CoreDumping:\t0")?;
    writeln!(out, "THP_enabled:\t1")?;
    writeln!(out, "Threads:\t1")
}
