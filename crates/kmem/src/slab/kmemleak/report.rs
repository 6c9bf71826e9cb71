//! The debugfs file `/sys/kernel/debug/kmemleak` and kmemleak's reports (mm/kmemleak.c
//! `print_unreferenced`, `hex_dump_object`, `dump_object_info`, `kmemleak_seq_show`,
//! `kmemleak_write`, `kmemleak_clear`), in Linux's formats. Addresses are shown as the
//! machine's model addresses (the caller passes the translation: vmalloc addresses are
//! translated by the layer above).

use core::fmt::{self, Write};

use super::object::{Obj, ObjId, KMEMLEAK_GREY, OBJECT_PHYS, OBJECT_REPORTED};
use super::scan::{read_byte, unreferenced};
use super::{delete_all, Inner, KmemleakError};
use crate::platform::{LogLevel, Platform};
use crate::slab::SlabLayer;

/// `HEX_ROW_SIZE`: bytes per hex dump line.
const HEX_ROW_SIZE: usize = 16;
/// `HEX_MAX_LINES`: lines of hex dump per object.
const HEX_MAX_LINES: usize = 2;
/// `HEX_PREFIX`.
const HEX_PREFIX: &str = "    ";

/// Translations between real and model addresses, from the layer that knows them all.
pub struct AddrXlate<'a> {
    /// Real → model (for printing).
    pub model: &'a dyn Fn(usize) -> u64,
    /// Model → real (for `dump=`), `None` for an address the machine does not map.
    pub real: &'a dyn Fn(u64) -> Option<usize>,
}

/// A line buffer on the stack for one report line.
struct LineBuf {
    buf: [u8; 160],
    len: usize,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            buf: [0; 160],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        Ok(())
    }
}

/// `hex_dump_to_buffer(buf, len, 16, 1, …, ascii=true)`: bytes as `xx` separated by spaces,
/// then the ASCII column at `rowsize * 2 + rowsize / groupsize + 1` (49).
fn hex_dump_line(bytes: &[u8], out: &mut LineBuf) {
    let _ = out.write_str(HEX_PREFIX);
    let start = out.len;
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            let _ = out.write_char(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    let ascii_column = HEX_ROW_SIZE * 2 + HEX_ROW_SIZE + 1;
    while out.len - start < ascii_column {
        let _ = out.write_char(' ');
    }
    for &b in bytes {
        let c = if (0x20..0x7f).contains(&b) {
            b as char
        } else {
            '.'
        };
        let _ = out.write_char(c);
    }
}

/// Where `warn_or_seq_printf` goes: the seq file, or the log (`pr_warn` with the
/// `kmemleak: ` prefix).
enum Sink<'a, 'b, P: Platform> {
    Seq(&'a mut dyn Write),
    Log(&'b SlabLayer<P>, LogLevel),
}

impl<P: Platform> Sink<'_, '_, P> {
    fn line(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        match self {
            Sink::Seq(w) => {
                w.write_fmt(args)?;
                w.write_char('\n')
            }
            Sink::Log(m, level) => {
                m.printk(*level, format_args!("kmemleak: {args}"));
                Ok(())
            }
        }
    }
}

fn type_str(o: &Obj) -> &'static str {
    if o.flags & OBJECT_PHYS != 0 {
        " (phys)"
    } else {
        ""
    }
}

impl<P: Platform> SlabLayer<P> {
    /// The address an object is shown at.
    fn kmemleak_shown(o: &Obj, model: &dyn Fn(usize) -> u64) -> u64 {
        if o.flags & OBJECT_PHYS != 0 {
            o.pointer as u64
        } else {
            model(o.pointer)
        }
    }

    /// `print_unreferenced` to `out`, or to the log (`None`).
    pub(super) fn kmemleak_print_unreferenced(
        &self,
        out: Option<&mut dyn Write>,
        o: &Obj,
        model: &dyn Fn(usize) -> u64,
    ) -> fmt::Result {
        let mut s = match out {
            Some(w) => Sink::Seq(w),
            None => Sink::Log(self, LogLevel::Warning),
        };
        s.line(format_args!(
            "unreferenced object{} 0x{:08x} (size {}):",
            type_str(o),
            Self::kmemleak_shown(o, model),
            o.size
        ))?;
        s.line(format_args!(
            "  comm \"{}\", pid {}, jiffies {}",
            o.comm_str(),
            o.pid,
            o.jiffies
        ))?;
        // hex_dump_object (nothing for a physical object: WARN_ON_ONCE in Linux).
        if o.flags & OBJECT_PHYS == 0 {
            let len = o.size.min(HEX_MAX_LINES * HEX_ROW_SIZE);
            s.line(format_args!("  hex dump (first {len} bytes):"))?;
            let mut row = [0u8; HEX_ROW_SIZE];
            let mut off = 0;
            let _quiet = self.kmemcheck_quiet();
            while off < len {
                let n = (len - off).min(HEX_ROW_SIZE);
                for (i, b) in row[..n].iter_mut().enumerate() {
                    *b = read_byte(o.pointer + off + i);
                }
                let mut lb = LineBuf::new();
                hex_dump_line(&row[..n], &mut lb);
                s.line(format_args!("{}", lb.as_str()))?;
                off += n;
            }
        }
        s.line(format_args!("  backtrace (crc {:x}):", o.checksum))?;
        let trace = self.stack_depot().fetch(o.stack);
        if trace.entries().is_empty() {
            if let Some(t) = o.trace {
                s.line(format_args!("    {}:{}:{}", t.file(), t.line(), t.column()))?;
            }
        }
        // print_unreferenced: "    [<%pK>] %pS" (mm/kmemleak.c).
        for &e in trace.entries() {
            s.line(format_args!("    [<{:016x}>] {}", e, self.sym(e)))?;
        }
        Ok(())
    }

    /// `dump_object_info` (`pr_notice`).
    pub(super) fn dump_object_info(&self, g: &Inner, id: ObjId) {
        self.kmemleak_dump_info(g.objs.get(id), &|a| self.to_model(a));
    }

    fn kmemleak_dump_info(&self, o: &Obj, model: &dyn Fn(usize) -> u64) {
        let mut s = Sink::Log(self, LogLevel::Notice);
        let _ = s.line(format_args!(
            "Object{} 0x{:08x} (size {}):",
            type_str(o),
            Self::kmemleak_shown(o, model),
            o.size
        ));
        let _ = s.line(format_args!(
            "  comm \"{}\", pid {}, jiffies {}",
            o.comm_str(),
            o.pid,
            o.jiffies
        ));
        let _ = s.line(format_args!("  min_count = {}", o.min_count));
        let _ = s.line(format_args!("  count = {}", o.count));
        let _ = s.line(format_args!("  flags = 0x{:x}", o.flags));
        let _ = s.line(format_args!("  checksum = {}", o.checksum));
        let _ = s.line(format_args!("  backtrace:"));
        // stack_depot_print: one space of indent, no prefix.
        let trace = self.stack_depot().fetch(o.stack);
        if trace.entries().is_empty() {
            if let Some(t) = o.trace {
                self.printk(
                    LogLevel::Notice,
                    format_args!(" {}:{}:{}", t.file(), t.line(), t.column()),
                );
            }
        }
        self.print_stack_trace(LogLevel::Notice, &trace, 1);
    }

    /// Reads `/sys/kernel/debug/kmemleak` (`kmemleak_seq_show` over the object list): every
    /// object reported by a scan and still unreferenced, in allocation order.
    pub fn kmemleak_show(&self, out: &mut dyn Write, x: &AddrXlate<'_>) -> fmt::Result {
        let g = self.leak.state.lock();
        let mut it = g.objs.first();
        while let Some(id) = it {
            let o = g.objs.get(id);
            if o.flags & OBJECT_REPORTED != 0 && unreferenced(o, &g.ctl) {
                self.kmemleak_print_unreferenced(Some(&mut *out), o, x.model)?;
            }
            it = g.objs.next(id);
        }
        Ok(())
    }

    /// Writes `text` to `/sys/kernel/debug/kmemleak` (`kmemleak_write`): `scan`, `clear`,
    /// `dump=ADDR` (a model address), `scan=SECS`, `scan=on|off`, `stack=on|off`, `off`;
    /// only the start of the text counts (Linux compares prefixes), as Linux. `roots` are the
    /// caller's stack values for `scan`.
    ///
    /// # Errors
    /// [`KmemleakError::Disabled`] (`EPERM`) when kmemleak is off (except `clear`);
    /// [`KmemleakError::Invalid`] (`EINVAL`) for other text, a bad number or an unknown
    /// object for `dump=`.
    pub fn kmemleak_write(
        &self,
        text: &str,
        roots: &[usize],
        x: &AddrXlate<'_>,
    ) -> Result<(), KmemleakError> {
        // Linux copies at most 63 bytes.
        let buf = &text.as_bytes()[..text.len().min(63)];
        let buf = core::str::from_utf8(buf).unwrap_or("");
        let mut g = self.leak.state.lock();
        if buf.starts_with("clear") {
            if self.leak.tracking() {
                self.kmemleak_clear_locked(&mut g);
            } else {
                delete_all(&mut g.objs);
            }
            return Ok(());
        }
        if !self.leak.tracking() {
            return Err(KmemleakError::Disabled);
        }
        if buf.starts_with("off") {
            self.kmemleak_disable_locked(&mut g);
        } else if buf.starts_with("stack=on") {
            g.ctl.stack_scan = true;
        } else if buf.starts_with("stack=off") {
            g.ctl.stack_scan = false;
        } else if buf.starts_with("scan=on") {
            self.kmemleak_start_scan_thread(&mut g);
        } else if buf.starts_with("scan=off") {
            self.kmemleak_stop_scan_thread(&mut g);
        } else if let Some(v) = buf.strip_prefix("scan=") {
            let secs = u32::try_from(kstrtoul(v).ok_or(KmemleakError::Invalid)?)
                .map_err(|_| KmemleakError::Invalid)?;
            let msecs = (u64::from(secs) * 1000).min(u64::from(u32::MAX));
            self.kmemleak_stop_scan_thread(&mut g);
            if msecs != 0 {
                g.ctl.scan_wait = msecs * self.platform().hz() / 1000;
                self.kmemleak_start_scan_thread(&mut g);
            }
        } else if buf.starts_with("scan") {
            self.kmemleak_scan_locked(&mut g, roots);
        } else if let Some(v) = buf.strip_prefix("dump=") {
            let addr = kstrtoul(v).ok_or(KmemleakError::Invalid)?;
            self.kmemleak_dump_str(&g, addr, x)?;
        } else {
            return Err(KmemleakError::Invalid);
        }
        Ok(())
    }

    /// `start_scan_thread`: the automatic scan runs at the next poll, then every
    /// `jiffies_scan_wait`.
    fn kmemleak_start_scan_thread(&self, g: &mut Inner) {
        if g.ctl.auto_scan {
            return;
        }
        g.ctl.auto_scan = true;
        g.ctl.next_scan = self.platform().jiffies();
        self.printk(
            LogLevel::Info,
            format_args!("kmemleak: Automatic memory scanning thread started"),
        );
    }

    /// `stop_scan_thread`.
    fn kmemleak_stop_scan_thread(&self, g: &mut Inner) {
        if !g.ctl.auto_scan {
            return;
        }
        g.ctl.auto_scan = false;
        g.ctl.next_scan = u64::MAX;
        self.printk(
            LogLevel::Info,
            format_args!("kmemleak: Automatic memory scanning thread ended"),
        );
    }

    /// `kmemleak_clear`: the reported objects become grey (never reported again, still
    /// scanned, so they keep their references alive).
    fn kmemleak_clear_locked(&self, g: &mut Inner) {
        let mut it = g.objs.first();
        while let Some(id) = it {
            let o = g.objs.get(id);
            if o.flags & OBJECT_REPORTED != 0 && unreferenced(o, &g.ctl) {
                g.objs.get_mut(id).min_count = KMEMLEAK_GREY;
            }
            it = g.objs.next(id);
        }
        g.ctl.found_leaks = false;
    }

    /// `dump_str_object_info`: the object containing `addr` (a model address, or a physical
    /// one for physical objects).
    fn kmemleak_dump_str(
        &self,
        g: &Inner,
        addr: u64,
        x: &AddrXlate<'_>,
    ) -> Result<(), KmemleakError> {
        let mut found = false;
        if let Some(real) = (x.real)(addr) {
            if let Ok(Some(id)) = g.objs.lookup(real, true, false) {
                self.kmemleak_dump_info(g.objs.get(id), x.model);
                found = true;
            }
        }
        if let Ok(Some(id)) = g.objs.lookup(addr as usize, true, true) {
            self.kmemleak_dump_info(g.objs.get(id), x.model);
            found = true;
        }
        if !found {
            self.printk(
                LogLevel::Info,
                format_args!("kmemleak: Unknown object at 0x{addr:08x}"),
            );
            return Err(KmemleakError::Invalid);
        }
        Ok(())
    }
}

/// `kstrtoul(s, 0, …)`: decimal, `0x` hex or `0` octal, one trailing newline allowed.
fn kstrtoul(s: &str) -> Option<u64> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || digits.starts_with('+') || digits.starts_with('-') {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn hex_line_format() {
        let mut lb = LineBuf::new();
        hex_dump_line(b"kkkkkkkkkkkkkkk\xa5", &mut lb);
        assert_eq!(
            lb.as_str(),
            "    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b a5  kkkkkkkkkkkkkkk."
        );
        // A short row keeps the ASCII column at 49 (lib/hexdump.c).
        let mut lb = LineBuf::new();
        hex_dump_line(b"ab\0", &mut lb);
        let mut want = std::string::String::from("    61 62 00");
        while want.len() < 4 + 49 {
            want.push(' ');
        }
        want.push_str("ab.");
        assert_eq!(lb.as_str(), want);
    }

    #[test]
    fn kstrtoul_bases() {
        assert_eq!(kstrtoul("10"), Some(10));
        assert_eq!(kstrtoul("0x10\n"), Some(16));
        assert_eq!(kstrtoul("010"), Some(8));
        assert_eq!(kstrtoul("0"), Some(0));
        assert_eq!(kstrtoul(""), None);
        assert_eq!(kstrtoul("x"), None);
        assert_eq!(kstrtoul("-1"), None);
    }
}
