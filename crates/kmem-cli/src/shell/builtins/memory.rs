//! Memory access through fault probes: peek, poke, hexdump.

use super::{Args, Builtin, Ctx, Fail, Param::*};
use crate::shell::value::Value;

/// Memory access through fault probes.
pub static MEMORY_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "peek8",
        proto: "u8 peek8(void *addr)",
        doc: "reads a byte",
        params: &[Addr],
        run: |c, a| peek(c, a, 1),
    },
    Builtin {
        name: "peek16",
        proto: "u16 peek16(void *addr)",
        doc: "reads a little-endian 16-bit value",
        params: &[Addr],
        run: |c, a| peek(c, a, 2),
    },
    Builtin {
        name: "peek32",
        proto: "u32 peek32(void *addr)",
        doc: "reads a little-endian 32-bit value",
        params: &[Addr],
        run: |c, a| peek(c, a, 4),
    },
    Builtin {
        name: "peek64",
        proto: "u64 peek64(void *addr)",
        doc: "reads a little-endian 64-bit value",
        params: &[Addr],
        run: |c, a| peek(c, a, 8),
    },
    Builtin {
        name: "poke8",
        proto: "void poke8(void *addr, u8 val)",
        doc: "writes a byte",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 1),
    },
    Builtin {
        name: "poke16",
        proto: "void poke16(void *addr, u16 val)",
        doc: "writes a little-endian 16-bit value",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 2),
    },
    Builtin {
        name: "poke32",
        proto: "void poke32(void *addr, u32 val)",
        doc: "writes a little-endian 32-bit value",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 4),
    },
    Builtin {
        name: "poke64",
        proto: "void poke64(void *addr, u64 val)",
        doc: "writes a little-endian 64-bit value",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 8),
    },
    Builtin {
        name: "memset",
        proto: "void memset(void *s, int c, size_t n)",
        doc: "fills n bytes with the byte c",
        params: &[Addr, Uint, Uint],
        run: |c, a| {
            let n = a.usize(2)?;
            if n > 1 << 30 {
                return Err(Fail::Error("at most 1 GiB at a time".into()));
            }
            let data = vec![a.u(1) as u8; n];
            c.k.write(a.u(0), &data)?;
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "hexdump",
        proto: "void hexdump(void *p, size_t len)",
        doc: "prints memory as print_hex_dump(DUMP_PREFIX_ADDRESS, 16, 1, ascii) does",
        params: &[Addr, Uint],
        run: hexdump,
    },
];

fn peek(c: &mut Ctx<'_>, a: &Args, n: usize) -> Result<Value, Fail> {
    let mut b = [0u8; 8];
    c.k.read(a.u(0), &mut b[..n])?;
    Ok(Value::Int(u64::from_le_bytes(b)))
}

fn poke(c: &mut Ctx<'_>, a: &Args, n: usize) -> Result<Value, Fail> {
    let v = a.u(1);
    let bits = 8 * n as u32;
    let fits = n == 8 || v >> bits == 0 || ((v as i64) < 0 && (v as i64) >= -(1i64 << (bits - 1)));
    if !fits {
        return Err(Fail::Error(format!(
            "{} does not fit in {} bits",
            v as i64,
            8 * n
        )));
    }
    c.k.write(a.u(0), &v.to_le_bytes()[..n])?;
    Ok(Value::Void)
}

/// `print_hex_dump(KERN_DEBUG, "", DUMP_PREFIX_ADDRESS, 16, 1, p, len, true)` (lib/hexdump.c):
/// `address: xx xx … xx  ascii`, the ASCII column at 16 * 3 + 1.
fn hexdump(c: &mut Ctx<'_>, a: &Args) -> Result<Value, Fail> {
    let start = a.u(0);
    let len = a.usize(1)?;
    if len > 1 << 20 {
        return Err(Fail::Error("at most 1 MiB at a time".into()));
    }
    let w = c.k.m.arch().ptr_hex_digits();
    let mut off = 0;
    while off < len {
        let n = (len - off).min(16);
        let mut row = [0u8; 16];
        let at = start.wrapping_add(off as u64);
        c.k.read(at, &mut row[..n])?;
        let mut line = format!("{at:0w$x}: ");
        let mut hex = String::new();
        for (i, b) in row[..n].iter().enumerate() {
            if i > 0 {
                hex.push(' ');
            }
            hex.push_str(&format!("{b:02x}"));
        }
        line.push_str(&format!("{hex:<49}"));
        for b in &row[..n] {
            line.push(if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            });
        }
        line.push('\n');
        c.emit(&line);
        off += n;
    }
    Ok(Value::Void)
}
