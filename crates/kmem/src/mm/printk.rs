//! printk: the kernel log (kernel/printk/printk.c), a ring buffer of records plus the
//! console.
//!
//! Each record keeps its level, a timestamp in nanoseconds and one line of text. The buffer
//! is allocated from memblock at boot (`log_buf_len`, [`LOG_BUF_LEN`]); when it is full the
//! oldest records are dropped, as Linux does. Records whose level is below the console log
//! level are also written to the platform console as they are logged.
//!
//! # Locking
//! The ring buffer is under its own lock (`logbuf_lock`), taken with no other kmem lock held
//! for longer than the copy; console output happens after the lock is released.

use core::fmt::{self, Write};

/// Size of the ring buffer (`1 << CONFIG_LOG_BUF_SHIFT`, 17 on x86 defconfig).
pub const LOG_BUF_LEN: usize = 128 << 10;
/// Longest line kept (`PRINTKRB_RECORD_MAX` is 1024 in Linux).
pub const LOG_LINE_MAX: usize = 1024;

/// `CONSOLE_LOGLEVEL_DEFAULT`.
pub const CONSOLE_LOGLEVEL_DEFAULT: u8 = 7;
/// `CONSOLE_LOGLEVEL_QUIET`: the `quiet` boot option.
pub const CONSOLE_LOGLEVEL_QUIET: u8 = 4;

/// A fixed-capacity line buffer used to format one record without allocating.
pub struct LineBuf {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuf {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LOG_LINE_MAX],
            len: 0,
        }
    }
    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s (cut at char boundaries) are ever appended.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
    /// Empties the line.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LOG_LINE_MAX - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Record header: length (u16), level (u8), pad (u8), timestamp (u64 ns).
const HDR: usize = 12;

/// The ring buffer. Memory is provided by the owner (memblock at boot).
pub struct LogBuf {
    buf: *mut u8,
    cap: usize,
    /// Offset of the oldest record.
    head: usize,
    /// Offset where the next record goes.
    tail: usize,
    /// Bytes in use.
    used: usize,
    /// Records dropped because the buffer was full.
    pub dropped: u64,
}

// SAFETY: `buf` is owned exclusively by this LogBuf (given at construction); the machine keeps
// it under a lock.
unsafe impl Send for LogBuf {}

impl LogBuf {
    /// Creates a ring over `cap` bytes at `buf`.
    ///
    /// # Safety
    /// `buf` must be valid for reads and writes of `cap` bytes for the life of the LogBuf and
    /// used by nothing else.
    pub unsafe fn new(buf: *mut u8, cap: usize) -> Self {
        Self {
            buf,
            cap,
            head: 0,
            tail: 0,
            used: 0,
            dropped: 0,
        }
    }

    fn byte(&self, off: usize) -> u8 {
        // SAFETY: `off % cap` is within the buffer given at construction.
        unsafe { *self.buf.add(off % self.cap) }
    }
    fn put(&mut self, off: usize, b: u8) {
        // SAFETY: `off % cap` < cap, the length of the buffer given at construction, and `&mut
        // self` is the only access to the ring (the log lock is held).
        unsafe { *self.buf.add(off % self.cap) = b }
    }
    fn rec_len(&self, off: usize) -> usize {
        HDR + (self.byte(off) as usize | (self.byte(off + 1) as usize) << 8)
    }

    /// Appends a record, dropping the oldest ones as needed.
    pub fn push(&mut self, level: u8, ts_ns: u64, text: &str) {
        let text = &text.as_bytes()[..text.len().min(LOG_LINE_MAX)];
        let need = HDR + text.len();
        if need > self.cap {
            return;
        }
        while self.cap - self.used < need {
            let l = self.rec_len(self.head);
            self.head = (self.head + l) % self.cap;
            self.used -= l;
            self.dropped += 1;
        }
        let t = self.tail;
        self.put(t, text.len() as u8);
        self.put(t + 1, (text.len() >> 8) as u8);
        self.put(t + 2, level);
        self.put(t + 3, 0);
        for (i, b) in ts_ns.to_le_bytes().iter().enumerate() {
            self.put(t + 4 + i, *b);
        }
        for (i, b) in text.iter().enumerate() {
            self.put(t + HDR + i, *b);
        }
        self.tail = (t + need) % self.cap;
        self.used += need;
    }

    /// Calls `f(level, ts_ns, line)` for each record, oldest first.
    pub fn for_each(&self, mut f: impl FnMut(u8, u64, &str)) {
        let mut off = self.head;
        let mut left = self.used;
        let mut line = LineBuf::new();
        while left > 0 {
            let l = self.rec_len(off);
            let level = self.byte(off + 2);
            let mut ts = [0u8; 8];
            for (i, b) in ts.iter_mut().enumerate() {
                *b = self.byte(off + 4 + i);
            }
            line.clear();
            let mut bytes = [0u8; LOG_LINE_MAX];
            for (i, b) in bytes.iter_mut().take(l - HDR).enumerate() {
                *b = self.byte(off + HDR + i);
            }
            let _ = line.write_str(core::str::from_utf8(&bytes[..l - HDR]).unwrap_or("?"));
            f(level, u64::from_le_bytes(ts), line.as_str());
            off = (off + l) % self.cap;
            left -= l;
        }
    }

    /// Forgets every record (`dmesg -C`).
    pub fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
        self.used = 0;
    }
}

/// Formats a timestamp as dmesg does: `[    1.234567]`.
pub fn write_timestamp(out: &mut dyn Write, ts_ns: u64) -> fmt::Result {
    write!(
        out,
        "[{:5}.{:06}]",
        ts_ns / 1_000_000_000,
        (ts_ns % 1_000_000_000) / 1000
    )
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    #[test]
    fn ring_drops_oldest() {
        let mut mem = [0u8; 64];
        // SAFETY: `mem` outlives `log` and is used by nothing else.
        let mut log = unsafe { LogBuf::new(mem.as_mut_ptr(), mem.len()) };
        for i in 0..10 {
            log.push(6, i, if i % 2 == 0 { "even line" } else { "odd" });
        }
        let mut seen = Vec::new();
        log.for_each(|_, ts, s| seen.push((ts, String::from(s))));
        assert_eq!(seen.last().unwrap(), &(9, String::from("odd")));
        assert!(log.dropped > 0);
        assert!(seen.len() < 10);
        let mut s = String::new();
        write_timestamp(&mut s, 1_234_567_890).unwrap();
        assert_eq!(s, "[    1.234567]");
    }
}
