//! The ACPI tables the memory subsystem needs: the RSDP, the root table (XSDT, or the RSDT of
//! ACPI 1.0 firmware), and the tables found through it — the SRAT (System Resource Affinity
//! Table: which proximity domain each CPU and memory range belongs to) and the SLIT (System
//! Locality Information Table: the distances between proximity domains).
//!
//! Layouts from the ACPI specification 6.5 (§5.2.5 RSDP, §5.2.6 the common header, §5.2.7/8
//! RSDT/XSDT, §5.2.16 SRAT, §5.2.17 SLIT), as Linux names them in include/acpi/actbl*.h.
//!
//! Every table is read through [`PhysMem`], which hands out bounded byte slices of physical
//! memory, and parsed from bytes with bounds checks: a truncated table, a bad checksum, an
//! entry of length zero or one that runs past its table is an [`AcpiError`] (one line, in the
//! words ACPICA and drivers/acpi/tables.c use), never a panic or an endless loop. The parser
//! itself has no `unsafe`; only [`IdentityMem`] touches raw memory.

use core::fmt;

use crate::boot;

/// The RSDP signature (§5.2.5.3).
pub const RSDP_SIG: &[u8; 8] = b"RSD PTR ";
/// Bytes of the ACPI 1.0 RSDP (covered by `checksum`).
pub const RSDP_V1_LEN: usize = 20;
/// Bytes of the ACPI 2.0+ RSDP (covered by `extended_checksum`).
pub const RSDP_V2_LEN: usize = 36;
/// Bytes of the common table header, `struct acpi_table_header`.
pub const HEADER_LEN: usize = 36;
/// The largest table this kernel reads (Linux maps whatever the header says; a bound keeps a
/// corrupt length from reaching far beyond the table).
pub const MAX_TABLE_LEN: u32 = 1 << 20;

/// Offset of the first SRAT entry: the header, then 4 reserved bytes (1 for compatibility)
/// and 8 reserved bytes (`struct acpi_table_srat`).
pub const SRAT_ENTRIES: usize = HEADER_LEN + 12;
/// Offset of the SLIT matrix: the header and `locality_count` (u64).
pub const SLIT_ENTRIES: usize = HEADER_LEN + 8;

/// SRAT entry types (`enum acpi_srat_type`).
pub const SRAT_TYPE_CPU_AFFINITY: u8 = 0;
/// Memory affinity.
pub const SRAT_TYPE_MEMORY_AFFINITY: u8 = 1;
/// Processor local x2APIC affinity.
pub const SRAT_TYPE_X2APIC_CPU_AFFINITY: u8 = 2;

/// `sizeof(struct acpi_srat_cpu_affinity)`.
pub const SRAT_CPU_AFFINITY_LEN: usize = 16;
/// `sizeof(struct acpi_srat_mem_affinity)`.
pub const SRAT_MEM_AFFINITY_LEN: usize = 40;
/// `sizeof(struct acpi_srat_x2apic_cpu_affinity)`.
pub const SRAT_X2APIC_AFFINITY_LEN: usize = 24;

/// `ACPI_SRAT_CPU_ENABLED` (also the x2APIC entry's enable bit).
pub const SRAT_CPU_ENABLED: u32 = 1;
/// `ACPI_SRAT_MEM_ENABLED`.
pub const SRAT_MEM_ENABLED: u32 = 1 << 0;
/// `ACPI_SRAT_MEM_HOT_PLUGGABLE`.
pub const SRAT_MEM_HOT_PLUGGABLE: u32 = 1 << 1;
/// `ACPI_SRAT_MEM_NON_VOLATILE`.
pub const SRAT_MEM_NON_VOLATILE: u32 = 1 << 2;

/// Physical memory as the table parser sees it.
pub trait PhysMem {
    /// Returns the `len` bytes at physical address `paddr`, or `None` when they cannot be
    /// read (outside the memory this kernel maps).
    fn bytes(&self, paddr: u64, len: usize) -> Option<&[u8]>;
}

/// Physical memory through the boot identity map (`[0, boot::identity_map_end())`).
///
/// # Invariants
/// Created only while the firmware's tables and the BIOS area are intact: nothing writes the
/// bytes a slice covers while it is alive (ACPI tables live in e820 "reserved"/"ACPI data"
/// ranges, which kmem never hands out, and the parse is over before kmem boots).
pub struct IdentityMem(());

impl IdentityMem {
    /// Memory through the identity map.
    ///
    /// # Safety
    /// Only during early boot, before anything may write the firmware's tables or the BIOS
    /// area, and only while the boot page tables identity-map physical memory.
    pub unsafe fn new() -> Self {
        IdentityMem(())
    }
}

impl PhysMem for IdentityMem {
    fn bytes(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        let end = paddr.checked_add(len as u64)?;
        // Page 0 is never a table (it holds the real-mode IVT): refusing it also keeps a null
        // pointer out of `from_raw_parts`.
        if paddr == 0 || end > boot::identity_map_end() {
            return None;
        }
        // SAFETY: `[paddr, end)` is inside the identity map built at boot (virtual ==
        // physical), so every byte is mapped and readable; nothing writes it while the slice
        // lives (type invariant); u8 has no alignment or validity requirement.
        Some(unsafe { core::slice::from_raw_parts(paddr as *const u8, len) })
    }
}

/// A four-byte table signature, printed as text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig(pub [u8; 4]);

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.0, 4)
    }
}

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Writes a fixed-width firmware string as ACPICA does (`acpi_tb_cleanup_table_header`):
/// stops at NUL, replaces unprintable bytes with `?`, pads with blanks to `width`.
fn write_ascii(f: &mut fmt::Formatter<'_>, bytes: &[u8], width: usize) -> fmt::Result {
    let mut n = 0;
    for &b in bytes.iter().take_while(|&&b| b != 0) {
        let c = if (0x20..0x7f).contains(&b) {
            b as char
        } else {
            '?'
        };
        fmt::Write::write_char(f, c)?;
        n += 1;
    }
    for _ in n..width {
        fmt::Write::write_char(f, ' ')?;
    }
    Ok(())
}

/// Why the tables could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP from the boot loader nor in the BIOS areas.
    NoRsdp,
    /// A table (or the RSDP) lies outside readable memory.
    Unreadable {
        /// What was being read.
        sig: Sig,
        /// Its physical address.
        paddr: u64,
    },
    /// A checksum does not add up (ACPICA's `acpi_tb_verify_checksum` words).
    BadChecksum {
        /// The table.
        sig: Sig,
        /// The checksum byte the table carries.
        found: u8,
        /// The value that would make its bytes sum to zero.
        expected: u8,
    },
    /// The table at an address has another signature than the one its pointer promised.
    BadSignature {
        /// Expected signature.
        expected: Sig,
        /// Found signature.
        found: Sig,
        /// Address.
        paddr: u64,
    },
    /// The header's length is shorter than the table's fixed part or absurdly long.
    BadLength {
        /// The table.
        sig: Sig,
        /// The length it claims.
        len: u32,
    },
    /// A subtable of length zero (it would loop forever).
    ZeroLengthEntry {
        /// The table.
        sig: Sig,
        /// Its type.
        kind: u8,
    },
    /// A subtable running past the end of its table.
    EntryOverrun {
        /// The table.
        sig: Sig,
        /// Its type.
        kind: u8,
        /// Offset of the entry in the table.
        offset: usize,
    },
    /// The SLIT matrix does not fit its table.
    SlitTruncated {
        /// `locality_count`.
        localities: u64,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcpiError::NoRsdp => write!(f, "A valid RSDP was not found"),
            AcpiError::Unreadable { sig, paddr } => {
                write!(f, "[{sig}] at {paddr:#x} is outside mapped memory")
            }
            AcpiError::BadChecksum {
                sig,
                found,
                expected,
            } => write!(
                f,
                "Incorrect checksum in table [{sig}] - 0x{found:02X}, should be 0x{expected:02X}"
            ),
            AcpiError::BadSignature {
                expected,
                found,
                paddr,
            } => write!(
                f,
                "Invalid signature 0x{:08X} for ACPI table at {paddr:#x}, expected [{expected}]",
                u32::from_le_bytes(found.0)
            ),
            AcpiError::BadLength { sig, len } => {
                write!(f, "Invalid table length 0x{len:X} in [{sig}]")
            }
            AcpiError::ZeroLengthEntry { sig, kind } => {
                write!(f, "[{sig}:0x{kind:02x}] Invalid zero length")
            }
            AcpiError::EntryOverrun { sig, kind, offset } => write!(
                f,
                "[{sig}:0x{kind:02x}] subtable at offset {offset:#x} runs past the table"
            ),
            AcpiError::SlitTruncated { localities } => write!(
                f,
                "SLIT: {localities} localities do not fit the table; SLIT not used"
            ),
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// The sum of `bytes` modulo 256 (zero for a valid table).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Checks that `bytes` sum to zero; `field` is the offset of the checksum byte.
fn verify_checksum(sig: Sig, bytes: &[u8], field: usize) -> Result<(), AcpiError> {
    let sum = checksum(bytes);
    if sum == 0 {
        return Ok(());
    }
    let found = bytes[field];
    Err(AcpiError::BadChecksum {
        sig,
        found,
        expected: found.wrapping_sub(sum),
    })
}

/// The Root System Description Pointer.
#[derive(Clone, Copy, Debug)]
pub struct Rsdp {
    /// Where it was found.
    pub paddr: u64,
    /// 0 for ACPI 1.0, 2 for ACPI 2.0+.
    pub revision: u8,
    /// OEM identification.
    pub oem_id: [u8; 6],
    /// Physical address of the RSDT (32-bit entries).
    pub rsdt: u32,
    /// Physical address of the XSDT (64-bit entries; 0 before ACPI 2.0).
    pub xsdt: u64,
    /// The length the checksums covered.
    pub length: u32,
}

impl Rsdp {
    /// Parses and validates the RSDP at `paddr`.
    ///
    /// # Errors
    /// Not readable, wrong signature or a checksum that does not add up.
    pub fn parse(mem: &dyn PhysMem, paddr: u64) -> Result<Rsdp, AcpiError> {
        let sig = Sig(*b"RSDP");
        let b = mem
            .bytes(paddr, RSDP_V1_LEN)
            .ok_or(AcpiError::Unreadable { sig, paddr })?;
        if &b[..8] != RSDP_SIG {
            let mut found = [0; 4];
            found.copy_from_slice(&b[..4]);
            return Err(AcpiError::BadSignature {
                expected: sig,
                found: Sig(found),
                paddr,
            });
        }
        verify_checksum(sig, b, 8)?;
        let mut rsdp = Rsdp {
            paddr,
            revision: b[15],
            oem_id: [0; 6],
            rsdt: u32_at(b, 16),
            xsdt: 0,
            length: RSDP_V1_LEN as u32,
        };
        rsdp.oem_id.copy_from_slice(&b[9..15]);
        if rsdp.revision >= 2 {
            let b = mem
                .bytes(paddr, RSDP_V2_LEN)
                .ok_or(AcpiError::Unreadable { sig, paddr })?;
            verify_checksum(sig, b, 32)?;
            rsdp.length = u32_at(b, 20);
            rsdp.xsdt = u64_at(b, 24);
        }
        Ok(rsdp)
    }

    /// Looks for the RSDP where the ACPI specification says BIOS systems keep it (§5.2.5.1):
    /// the first KiB of the EBDA (its segment at 0x40e), then `0xe0000..0x100000`, on 16-byte
    /// boundaries. The first candidate that validates wins (Linux's
    /// `acpi_find_root_pointer`).
    pub fn scan_bios(mem: &dyn PhysMem) -> Option<Rsdp> {
        let ebda = mem
            .bytes(0x40e, 2)
            .map(|b| u64::from(u16_at(b, 0)) << 4)
            .filter(|&a| a >= 0x400);
        let areas = [ebda.map(|a| (a, a + 1024)), Some((0xe0000, 0x100000))];
        for (start, end) in areas.into_iter().flatten() {
            let mut p = start;
            while p + RSDP_V1_LEN as u64 <= end {
                if mem.bytes(p, 8).is_some_and(|b| b == RSDP_SIG) {
                    if let Ok(r) = Rsdp::parse(mem, p) {
                        return Some(r);
                    }
                }
                p += 16;
            }
        }
        None
    }
}

impl fmt::Display for Rsdp {
    /// ACPICA's `acpi_tb_print_table_header` line for the RSDP.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ACPI: RSDP 0x{:016X} {:06X} (v{:02} ",
            self.paddr, self.length, self.revision
        )?;
        write_ascii(f, &self.oem_id, 6)?;
        write!(f, ")")
    }
}

/// A validated table: its header fields and all its bytes.
#[derive(Clone, Copy)]
pub struct Table<'m> {
    /// Where it is.
    pub paddr: u64,
    /// Its signature.
    pub sig: Sig,
    /// Its revision.
    pub revision: u8,
    /// The whole table, header included (`length` bytes).
    pub bytes: &'m [u8],
}

impl<'m> Table<'m> {
    /// Reads and validates the table at `paddr` (length bounds and checksum); `expected`
    /// checks its signature.
    ///
    /// # Errors
    /// Unreadable, wrong signature, bad length or checksum.
    pub fn load(
        mem: &'m dyn PhysMem,
        paddr: u64,
        expected: Option<Sig>,
    ) -> Result<Table<'m>, AcpiError> {
        let unknown = Sig(*b"????");
        let h = mem.bytes(paddr, HEADER_LEN).ok_or(AcpiError::Unreadable {
            sig: expected.unwrap_or(unknown),
            paddr,
        })?;
        let mut s = [0; 4];
        s.copy_from_slice(&h[..4]);
        let sig = Sig(s);
        if let Some(e) = expected {
            if e != sig {
                return Err(AcpiError::BadSignature {
                    expected: e,
                    found: sig,
                    paddr,
                });
            }
        }
        let len = u32_at(h, 4);
        if (len as usize) < HEADER_LEN || len > MAX_TABLE_LEN {
            return Err(AcpiError::BadLength { sig, len });
        }
        let bytes = mem
            .bytes(paddr, len as usize)
            .ok_or(AcpiError::Unreadable { sig, paddr })?;
        verify_checksum(sig, bytes, 9)?;
        Ok(Table {
            paddr,
            sig,
            revision: bytes[8],
            bytes,
        })
    }

    /// The table's length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl fmt::Display for Table<'_> {
    /// ACPICA's `acpi_tb_print_table_header` line:
    /// `ACPI: SRAT 0x000000007FFE2311 0000D0 (v01 BOCHS  BXPC     00000001 BXPC 00000001)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes;
        write!(
            f,
            "ACPI: {} 0x{:016X} {:06X} (v{:02} ",
            self.sig,
            self.paddr,
            self.bytes.len(),
            self.revision
        )?;
        write_ascii(f, &b[10..16], 6)?;
        write!(f, " ")?;
        write_ascii(f, &b[16..24], 8)?;
        write!(f, " {:08X} ", u32_at(b, 24))?;
        write_ascii(f, &b[28..32], 4)?;
        write!(f, " {:08X})", u32_at(b, 32))
    }
}

/// The root table (XSDT, or RSDT when the firmware has no XSDT) and the memory behind it.
pub struct Acpi<'m> {
    mem: &'m dyn PhysMem,
    /// The root table.
    pub root: Table<'m>,
    /// Bytes per root entry: 8 (XSDT) or 4 (RSDT).
    entry_size: usize,
}

impl<'m> Acpi<'m> {
    /// Opens the tables behind `rsdp`: the XSDT when revision ≥ 2 gives one, else the RSDT
    /// (ACPICA's `acpi_tb_parse_root_table`).
    ///
    /// # Errors
    /// The root table does not validate.
    pub fn new(mem: &'m dyn PhysMem, rsdp: Rsdp) -> Result<Acpi<'m>, AcpiError> {
        let (paddr, sig, entry_size) = if rsdp.revision >= 2 && rsdp.xsdt != 0 {
            (rsdp.xsdt, Sig(*b"XSDT"), 8)
        } else {
            (u64::from(rsdp.rsdt), Sig(*b"RSDT"), 4)
        };
        let root = Table::load(mem, paddr, Some(sig))?;
        Ok(Acpi {
            mem,
            root,
            entry_size,
        })
    }

    /// The physical addresses the root table lists (a trailing partial entry is ignored).
    pub fn entries(&self) -> impl Iterator<Item = u64> + '_ {
        self.root.bytes[HEADER_LEN..]
            .chunks_exact(self.entry_size)
            .map(|c| {
                if c.len() == 8 {
                    u64_at(c, 0)
                } else {
                    u64::from(u32_at(c, 0))
                }
            })
    }

    /// Every table the root lists, loaded and validated (an invalid one as its error).
    pub fn tables(&self) -> impl Iterator<Item = Result<Table<'m>, AcpiError>> + '_ {
        self.entries().map(|p| Table::load(self.mem, p, None))
    }

    /// The first valid table with signature `sig`, if any. A listed table that does not
    /// validate is skipped with its error in `skipped` (the caller prints it).
    pub fn find(&self, sig: Sig, skipped: &mut Option<AcpiError>) -> Option<Table<'m>> {
        for p in self.entries() {
            // Peek at the signature first, so a broken table of another kind is not reported.
            let Some(h) = self.mem.bytes(p, 4) else {
                continue;
            };
            if h != sig.0 {
                continue;
            }
            match Table::load(self.mem, p, Some(sig)) {
                Ok(t) => return Some(t),
                Err(e) => *skipped = Some(e),
            }
        }
        None
    }
}

/// One SRAT entry this kernel understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SratEntry {
    /// Processor local APIC affinity (type 0), or x2APIC affinity (type 2).
    Cpu {
        /// The (x2)APIC ID.
        apic_id: u32,
        /// The proximity domain (type 0: the low byte, plus the high three bytes from SRAT
        /// revision 2 on, as `acpi_numa_processor_affinity_init` reads it).
        pxm: u32,
        /// `ACPI_SRAT_CPU_ENABLED`.
        enabled: bool,
        /// Whether it was an x2APIC entry.
        x2apic: bool,
    },
    /// Memory affinity (type 1).
    Memory {
        /// First byte.
        base: u64,
        /// Bytes.
        length: u64,
        /// The proximity domain (only the low byte for SRAT revision ≤ 1).
        pxm: u32,
        /// `ACPI_SRAT_MEM_*` flags.
        flags: u32,
    },
    /// Any other type (GICC, ITS, generic initiator…): skipped.
    Other {
        /// The type.
        kind: u8,
    },
    /// A known type whose length is not the structure's size (Linux's `bad_srat()` case).
    BadLength {
        /// The type.
        kind: u8,
        /// The length it claims.
        len: u8,
    },
}

/// Iterates over the SRAT's entries; yields one error and stops on a malformed entry.
pub struct SratIter<'t> {
    table: &'t [u8],
    revision: u8,
    offset: usize,
    done: bool,
}

/// Returns an iterator over the entries of the SRAT `t`.
///
/// # Errors
/// A table too short for its fixed part.
pub fn srat_entries<'t>(t: &Table<'t>) -> Result<SratIter<'t>, AcpiError> {
    if t.len() < SRAT_ENTRIES {
        return Err(AcpiError::BadLength {
            sig: t.sig,
            len: t.len() as u32,
        });
    }
    Ok(SratIter {
        table: t.bytes,
        revision: t.revision,
        offset: SRAT_ENTRIES,
        done: false,
    })
}

impl Iterator for SratIter<'_> {
    type Item = Result<SratEntry, AcpiError>;

    fn next(&mut self) -> Option<Self::Item> {
        let sig = Sig(*b"SRAT");
        if self.done || self.offset + 2 > self.table.len() {
            return None;
        }
        let off = self.offset;
        let (kind, len) = (self.table[off], self.table[off + 1]);
        let len_us = usize::from(len);
        if len == 0 {
            self.done = true;
            return Some(Err(AcpiError::ZeroLengthEntry { sig, kind }));
        }
        if off + len_us > self.table.len() {
            self.done = true;
            return Some(Err(AcpiError::EntryOverrun {
                sig,
                kind,
                offset: off,
            }));
        }
        self.offset += len_us;
        let e = &self.table[off..off + len_us];
        let want = match kind {
            SRAT_TYPE_CPU_AFFINITY => SRAT_CPU_AFFINITY_LEN,
            SRAT_TYPE_MEMORY_AFFINITY => SRAT_MEM_AFFINITY_LEN,
            SRAT_TYPE_X2APIC_CPU_AFFINITY => SRAT_X2APIC_AFFINITY_LEN,
            _ => return Some(Ok(SratEntry::Other { kind })),
        };
        if len_us != want {
            return Some(Ok(SratEntry::BadLength { kind, len }));
        }
        Some(Ok(match kind {
            SRAT_TYPE_CPU_AFFINITY => {
                let mut pxm = u32::from(e[2]);
                if self.revision >= 2 {
                    pxm |= u32::from_le_bytes([e[9], e[10], e[11], 0]) << 8;
                }
                SratEntry::Cpu {
                    apic_id: u32::from(e[3]),
                    pxm,
                    enabled: u32_at(e, 4) & SRAT_CPU_ENABLED != 0,
                    x2apic: false,
                }
            }
            SRAT_TYPE_MEMORY_AFFINITY => {
                let mut pxm = u32_at(e, 2);
                if self.revision <= 1 {
                    pxm &= 0xff;
                }
                SratEntry::Memory {
                    base: u64_at(e, 8),
                    length: u64_at(e, 16),
                    pxm,
                    flags: u32_at(e, 28),
                }
            }
            _ => SratEntry::Cpu {
                apic_id: u32_at(e, 8),
                pxm: u32_at(e, 4),
                enabled: u32_at(e, 12) & SRAT_CPU_ENABLED != 0,
                x2apic: true,
            },
        }))
    }
}

/// The SLIT: `localities` × `localities` distances, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Slit<'t> {
    /// `locality_count`.
    pub localities: usize,
    /// The matrix.
    pub entries: &'t [u8],
}

impl<'t> Slit<'t> {
    /// Parses the SLIT `t`.
    ///
    /// # Errors
    /// The matrix does not fit the table.
    pub fn parse(t: &Table<'t>) -> Result<Slit<'t>, AcpiError> {
        if t.len() < SLIT_ENTRIES {
            return Err(AcpiError::BadLength {
                sig: t.sig,
                len: t.len() as u32,
            });
        }
        let n = u64_at(t.bytes, HEADER_LEN);
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(n))
            .and_then(|nn| nn.checked_add(SLIT_ENTRIES))
            .is_some_and(|end| end <= t.len());
        if !fits {
            return Err(AcpiError::SlitTruncated { localities: n });
        }
        let n = n as usize;
        Ok(Slit {
            localities: n,
            entries: &t.bytes[SLIT_ENTRIES..SLIT_ENTRIES + n * n],
        })
    }

    /// The distance from locality `i` to `j` (`None` outside the matrix).
    pub fn distance(&self, i: usize, j: usize) -> Option<u8> {
        if i >= self.localities || j >= self.localities {
            return None;
        }
        self.entries.get(i * self.localities + j).copied()
    }
}
