//! The PVH start-of-day information: `struct hvm_start_info`, its e820 memory map and the kernel
//! command line, copied into kernel memory before anything else touches RAM.
//!
//! Layouts from xen/include/public/arch-x86/hvm/start_info.h (version 1 adds the memory map,
//! which QEMU always provides). The copy matters: the start info, the map and the command line
//! live in low RAM that the e820 map reports as usable, and the buddy allocator takes all usable
//! RAM that is not reserved.

use core::fmt;

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const START_MAGIC: u32 = 0x336e_c578;

/// e820 type of usable RAM (`E820_TYPE_RAM`, arch/x86/include/asm/e820/types.h).
pub const E820_RAM: u32 = 1;

/// Entries kept from the map (Linux's `E820_MAX_ENTRIES_ZEROPAGE` is 128).
pub const MAX_E820: usize = 128;
/// Bytes of command line kept (Linux's x86 `COMMAND_LINE_SIZE` is 2048).
pub const CMDLINE_SIZE: usize = 2048;

/// `struct hvm_start_info` (version 1).
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `struct hvm_memmap_table_entry`.
#[repr(C)]
#[derive(Clone, Copy)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// One range of the physical memory map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    /// First physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// e820 type (1 = usable RAM).
    pub kind: u32,
}

impl E820Entry {
    /// The end (exclusive) of the range.
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
    /// The name Linux prints for this type (arch/x86/kernel/e820.c, `e820_print_type`).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            1 => "usable",
            2 => "reserved",
            3 => "ACPI data",
            4 => "ACPI NVS",
            5 => "unusable",
            7 | 12 => "persistent (type 7/12)",
            _ => "type ?",
        }
    }
}

/// What the boot loader told us, copied out of the start-of-day structure.
pub struct BootInfo {
    entries: [E820Entry; MAX_E820],
    nr_entries: usize,
    /// Entries the loader gave beyond [`MAX_E820`] (dropped).
    pub dropped_entries: usize,
    cmdline: [u8; CMDLINE_SIZE],
    cmdline_len: usize,
    /// Physical address of `hvm_start_info` itself.
    pub start_info_paddr: u64,
    /// Version of the structure.
    pub version: u32,
    /// Physical address of the ACPI RSDP (0 when the loader gave none).
    pub rsdp_paddr: u64,
}

/// Why the start info could not be used.
#[derive(Debug)]
pub enum PvhError {
    /// `magic` was not [`START_MAGIC`]: not started through PVH.
    BadMagic(u32),
    /// Version 0 has no memory map.
    NoMemoryMap,
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PvhError::BadMagic(m) => write!(f, "bad hvm_start_info magic {m:#x}"),
            PvhError::NoMemoryMap => write!(f, "hvm_start_info has no memory map"),
        }
    }
}

impl BootInfo {
    /// Copies the start info at physical address `paddr` into a `BootInfo`.
    ///
    /// # Errors
    /// [`PvhError`] when the structure is not a PVH start info with a memory map.
    ///
    /// # Safety
    /// `paddr` must be the `%ebx` value the PVH loader passed, read while the identity map
    /// covers it and before any of that memory is reused.
    pub unsafe fn from_start_info(paddr: u64) -> Result<Self, PvhError> {
        // SAFETY: the loader placed a `struct hvm_start_info` at `paddr`, which is
        // identity-mapped; the read is unaligned-safe.
        let si = unsafe { (paddr as *const HvmStartInfo).read_unaligned() };
        if si.magic != START_MAGIC {
            return Err(PvhError::BadMagic(si.magic));
        }
        if si.version < 1 || si.memmap_paddr == 0 || si.memmap_entries == 0 {
            return Err(PvhError::NoMemoryMap);
        }
        let mut info = BootInfo {
            entries: [E820Entry::default(); MAX_E820],
            nr_entries: 0,
            dropped_entries: 0,
            cmdline: [0; CMDLINE_SIZE],
            cmdline_len: 0,
            start_info_paddr: paddr,
            version: si.version,
            rsdp_paddr: si.rsdp_paddr,
        };
        let n = si.memmap_entries as usize;
        for i in 0..n.min(MAX_E820) {
            // SAFETY: the loader's map has `memmap_entries` entries at `memmap_paddr`.
            let e = unsafe {
                (si.memmap_paddr as *const HvmMemmapEntry)
                    .add(i)
                    .read_unaligned()
            };
            info.entries[i] = E820Entry {
                addr: e.addr,
                size: e.size,
                kind: e.kind,
            };
        }
        info.nr_entries = n.min(MAX_E820);
        info.dropped_entries = n.saturating_sub(MAX_E820);
        if si.cmdline_paddr != 0 {
            let p = si.cmdline_paddr as *const u8;
            let mut len = 0;
            while len < CMDLINE_SIZE - 1 {
                // SAFETY: the command line is a NUL-terminated string at `cmdline_paddr`; we
                // stop at the NUL or at our buffer's size.
                let b = unsafe { p.add(len).read_volatile() };
                if b == 0 {
                    break;
                }
                info.cmdline[len] = b;
                len += 1;
            }
            info.cmdline_len = len;
        }
        Ok(info)
    }

    /// The memory map, in the loader's order.
    pub fn e820(&self) -> &[E820Entry] {
        &self.entries[..self.nr_entries]
    }

    /// The kernel command line (empty when none, or not UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The end (exclusive) of the highest usable RAM range.
    pub fn max_ram_end(&self) -> u64 {
        self.e820()
            .iter()
            .filter(|e| e.kind == E820_RAM)
            .map(|e| e.end())
            .max()
            .unwrap_or(0)
    }

    /// Total usable RAM in bytes.
    pub fn total_ram(&self) -> u64 {
        self.e820()
            .iter()
            .filter(|e| e.kind == E820_RAM)
            .map(|e| e.size)
            .sum()
    }
}

/// The kernel command line, split into `key=value` / `flag` parameters.
#[derive(Clone, Copy)]
pub struct Cmdline<'a>(pub &'a str);

impl<'a> Cmdline<'a> {
    /// Iterates over the values of every `key=value` parameter named `key`, in order.
    pub fn values(self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.split_ascii_whitespace().filter_map(move |p| {
            let (k, v) = p.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// Returns whether `key=value` is present (values may be comma-separated lists).
    pub fn has_value(self, key: &'a str, value: &str) -> bool {
        self.values(key).any(|v| v.split(',').any(|x| x == value))
    }

    /// Returns whether the bare flag `flag` is present.
    pub fn has_flag(self, flag: &str) -> bool {
        self.0.split_ascii_whitespace().any(|p| p == flag)
    }
}
