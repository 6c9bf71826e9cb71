//! The console: a 16550 UART on COM1 (I/O port 0x3f8), polled, 115200 8N1.
//!
//! `print!`/`println!` write through [`CONSOLE`], a spinlock-protected writer. The panic and
//! exception paths use [`emergency`], which writes without the lock (the lock may be held by the
//! code that crashed).

use core::fmt;

use crate::arch::{inb, outb};
use crate::spinlock::SpinLock;

/// Base I/O port of COM1.
const COM1: u16 = 0x3f8;
/// Line status register: bit 5 = transmit holding register empty.
const LSR: u16 = COM1 + 5;
const LSR_THRE: u8 = 1 << 5;

/// Programs COM1: interrupts off, 115200 baud (divisor 1), 8 data bits, no parity, one stop
/// bit, FIFOs on.
pub fn init() {
    // SAFETY: COM1 belongs to this kernel; the sequence is the standard 16550 setup.
    unsafe {
        outb(COM1 + 1, 0x00); // IER: no interrupts
        outb(COM1 + 3, 0x80); // LCR: DLAB on
        outb(COM1, 0x01); // divisor low: 115200 baud
        outb(COM1 + 1, 0x00); // divisor high
        outb(COM1 + 3, 0x03); // LCR: 8N1, DLAB off
        outb(COM1 + 2, 0xc7); // FCR: FIFO on, cleared, 14-byte threshold
        outb(COM1 + 4, 0x03); // MCR: DTR | RTS
    }
}

fn put_byte(b: u8) {
    // SAFETY: COM1 belongs to this kernel; reading LSR and writing THR are side-effect-free
    // apart from sending the byte.
    unsafe {
        while inb(LSR) & LSR_THRE == 0 {
            core::hint::spin_loop();
        }
        outb(COM1, b);
    }
}

/// Writes raw bytes to COM1 without taking any lock.
fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        put_byte(b);
    }
}

/// A writer to COM1 (no locking of its own).
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// The console, serialising whole `print!` calls.
pub static CONSOLE: SpinLock<Serial> = SpinLock::new(Serial);

/// Returns a writer that bypasses [`CONSOLE`]'s lock, for the panic and exception paths.
pub fn emergency() -> Serial {
    Serial
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    use fmt::Write;
    // A recursive print (a panic inside Display) goes out unlocked rather than deadlocking.
    match CONSOLE.try_lock() {
        Some(mut console) => {
            let _ = console.write_fmt(args);
        }
        None => {
            let _ = emergency().write_fmt(args);
        }
    }
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::serial::_print(format_args!($($arg)*)));
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::serial::_print(format_args!("{}\n", format_args!($($arg)*))));
}
