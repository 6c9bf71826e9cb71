//! Record fifos: variable-length byte records behind a 1- or 2-byte length header.

use crate::sync::{slots_as_mut_ptr, Ordering};

use super::*;

/// A record fifo: variable-length byte records, each behind an `R`-byte (1 or 2) little-endian
/// length header (`STRUCT_KFIFO_REC_1/2`, `struct kfifo_rec_ptr_1/2`).
///
/// Record input is all-or-nothing; output copies at most the buffer's length but always
/// consumes the whole record.
pub struct KfifoRec<S: Storage<u8>, const R: usize> {
    fifo: KfifoBase<u8, S>,
}

/// `STRUCT_KFIFO_REC_1(N)` / `STRUCT_KFIFO_REC_2(N)` with storage inside.
pub type KfifoRecInline<const N: usize, const R: usize> = KfifoRec<Inline<u8, N>, R>;

impl<S: Storage<u8>, const R: usize> KfifoRec<S, R> {
    const CHECK: () = assert!(R == 1 || R == 2, "record header size must be 1 or 2");
    /// The largest record payload: 255 or 65535 bytes (`__kfifo_max_r`).
    pub const MAX_RECORD: usize = (1 << (8 * R)) - 1;

    /// Wraps a byte fifo (any storage) as a record fifo.
    pub fn from_fifo(fifo: KfifoBase<u8, S>) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        Self { fifo }
    }

    /// Returns the underlying byte fifo.
    pub fn into_inner(self) -> KfifoBase<u8, S> {
        self.fifo
    }

    /// Reads the length header at `out` (`__kfifo_peek_n`).
    fn peek_n(&self) -> usize {
        let f = &self.fifo;
        let o = f.out.load(Ordering::Relaxed);
        let mut h = [0u8; 2];
        // SAFETY: a record is present (callers check non-empty), so its header slots are
        // filled and owned by the consumer side (we hold `&self` under the record API's
        // exclusive use).
        unsafe { f.copy_out(h.as_mut_ptr(), R as u32, o) };
        if R == 1 {
            h[0] as usize
        } else {
            u16::from_le_bytes(h) as usize
        }
    }

    /// Writes a length header at `in` (`__kfifo_poke_n`).
    fn poke_n(&self, n: usize) {
        let f = &self.fifo;
        let h = (n as u16).to_le_bytes();
        // SAFETY: callers checked that `n + R` bytes are free; producer-owned slots.
        unsafe { f.copy_in(h.as_ptr(), R as u32, f.in_.load(Ordering::Relaxed)) };
    }

    fn unused(&self) -> usize {
        self.fifo.avail()
    }

    /// `kfifo_size`: capacity in bytes.
    pub fn size(&self) -> usize {
        self.fifo.size()
    }

    /// `kfifo_len`: bytes in use, headers included.
    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    /// `kfifo_is_empty`: no record stored.
    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty()
    }

    /// `kfifo_is_full`.
    pub fn is_full(&self) -> bool {
        self.fifo.is_full()
    }

    /// `kfifo_avail`: the largest record that would fit right now.
    pub fn avail(&self) -> usize {
        let a = self.unused();
        if a <= R {
            0
        } else {
            (a - R).min(Self::MAX_RECORD)
        }
    }

    /// `kfifo_reset`.
    pub fn reset(&mut self) {
        self.fifo.reset();
    }

    /// `kfifo_in` on a record fifo: stores `rec` as one record if it fits entirely; returns its
    /// length, or 0 if it does not fit. A record longer than [`Self::MAX_RECORD`] is rejected
    /// (returns 0; Linux would store a truncated header and corrupt the stream).
    pub fn push(&mut self, rec: &[u8]) -> usize {
        let len = rec.len();
        if len > Self::MAX_RECORD || len + R > self.unused() {
            return 0;
        }
        self.poke_n(len);
        let f = &self.fifo;
        let i = f.in_.load(Ordering::Relaxed);
        // SAFETY: `len + R` bytes are free (checked) and we are the only producer (`&mut`).
        unsafe { f.copy_in(rec.as_ptr(), len as u32, i.wrapping_add(R as u32)) };
        f.in_
            .store(i.wrapping_add((len + R) as u32), Ordering::Release);
        len
    }

    /// `kfifo_out_peek` on a record fifo: copies the first record's payload (truncated to
    /// `buf.len()`) without removing it; returns the bytes copied (0 when empty).
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        if self.fifo.is_empty() {
            return 0;
        }
        let n = self.peek_n();
        let len = buf.len().min(n);
        let o = self.fifo.out.load(Ordering::Relaxed);
        // SAFETY: the record's `n` payload bytes are filled; we read `len <= n` of them.
        unsafe {
            self.fifo
                .copy_out(buf.as_mut_ptr(), len as u32, o.wrapping_add(R as u32))
        };
        len
    }

    /// `kfifo_out` on a record fifo: copies the first record's payload (truncated to
    /// `buf.len()`), removes the whole record, and returns the bytes copied.
    pub fn pop(&mut self, buf: &mut [u8]) -> usize {
        if self.fifo.is_empty() {
            return 0;
        }
        let n = self.peek_n();
        let len = self.peek(buf);
        let o = self.fifo.out.load(Ordering::Relaxed);
        self.fifo
            .out
            .store(o.wrapping_add((n + R) as u32), Ordering::Release);
        len
    }

    /// `kfifo_skip` on a record fifo: removes the first record.
    pub fn skip(&mut self) {
        if self.fifo.is_empty() {
            return;
        }
        let n = self.peek_n();
        let o = self.fifo.out.load(Ordering::Relaxed);
        self.fifo
            .out
            .store(o.wrapping_add((n + R) as u32), Ordering::Release);
    }

    /// `kfifo_peek_len`: the payload length of the first record (0 when empty).
    pub fn peek_len(&self) -> usize {
        if self.fifo.is_empty() {
            0
        } else {
            self.peek_n()
        }
    }

    /// `kfifo_dma_in_prepare` on a record fifo: room for one record of up to `len` bytes
    /// (clamped to [`Self::MAX_RECORD`]) after its header; empty if it does not fit.
    pub fn dma_in_prepare(&mut self, len: usize) -> DmaSegments {
        let len = len.min(Self::MAX_RECORD);
        if len + R > self.unused() {
            return DmaSegments {
                segs: [DmaSegments::EMPTY; 2],
                n: 0,
            };
        }
        let i = self.fifo.in_.load(Ordering::Relaxed);
        self.fifo.setup_sgl(len as u32, i.wrapping_add(R as u32))
    }

    /// `kfifo_dma_in_finish` on a record fifo: commits a record of `len` bytes.
    ///
    /// # Safety
    /// `len` bytes must have been written into the segments of the matching prepare, and
    /// `len` must not exceed their total.
    pub unsafe fn dma_in_finish(&mut self, len: usize) {
        let len = len.min(Self::MAX_RECORD);
        self.poke_n(len);
        let i = self.fifo.in_.load(Ordering::Relaxed);
        self.fifo
            .in_
            .store(i.wrapping_add((len + R) as u32), Ordering::Release);
    }

    /// `kfifo_dma_out_prepare` on a record fifo: the payload of the first record, up to `len`
    /// bytes; empty if the fifo is empty.
    pub fn dma_out_prepare(&mut self, len: usize) -> DmaSegments {
        if self.fifo.is_empty() {
            return DmaSegments {
                segs: [DmaSegments::EMPTY; 2],
                n: 0,
            };
        }
        let len = len.min(self.peek_n());
        let o = self.fifo.out.load(Ordering::Relaxed);
        self.fifo.setup_sgl(len as u32, o.wrapping_add(R as u32))
    }

    /// `kfifo_dma_out_finish` on a record fifo: removes the first record.
    pub fn dma_out_finish(&mut self) {
        self.skip();
    }

    /// `kfifo_from_user` on a record fifo: stores up to `len` bytes (clamped to
    /// [`Self::MAX_RECORD`]) of `from` as one record if it fits; returns the bytes stored
    /// (0 if it does not fit).
    ///
    /// # Errors
    /// [`KfifoError::Fault`] with `copied: 0` if the source faulted; nothing is stored.
    pub fn from_user<U: UserSource + ?Sized>(
        &mut self,
        from: &U,
        len: usize,
    ) -> Result<usize, KfifoError> {
        let len = len.min(Self::MAX_RECORD);
        if len + R > self.unused() {
            return Ok(0);
        }
        let f = &self.fifo;
        let i = f.in_.load(Ordering::Relaxed);
        let size = f.mask() + 1;
        let off = i.wrapping_add(R as u32) & f.mask();
        let l = (len as u32).min(size - off);
        let base = slots_as_mut_ptr(f.slots());
        // SAFETY: the runs lie in the buffer's free slots, which the producer owns.
        let mut nc = unsafe { from.copy_from_user(base.add(off as usize), 0, l as usize) };
        if nc == 0 {
            // SAFETY: the wrapped run starts at byte 0 and is `len - l` bytes, within the free
            // space checked above, which only the producer (us) writes.
            nc = unsafe { from.copy_from_user(base, l as usize, len - l as usize) };
        }
        if nc != 0 {
            return Err(KfifoError::Fault { copied: 0 });
        }
        self.poke_n(len);
        self.fifo
            .in_
            .store(i.wrapping_add((len + R) as u32), Ordering::Release);
        Ok(len)
    }

    /// `kfifo_to_user` on a record fifo: copies the first record's payload (truncated to
    /// `len`) to `to` and removes the record; returns the bytes copied (0 when empty).
    ///
    /// # Errors
    /// [`KfifoError::Fault`] with `copied: 0` if the sink faulted; the record stays.
    pub fn to_user<U: UserSink + ?Sized>(
        &mut self,
        to: &mut U,
        len: usize,
    ) -> Result<usize, KfifoError> {
        if self.fifo.is_empty() {
            return Ok(0);
        }
        let n = self.peek_n();
        let len = len.min(n);
        let f = &self.fifo;
        let o = f.out.load(Ordering::Relaxed);
        let size = f.mask() + 1;
        let off = o.wrapping_add(R as u32) & f.mask();
        let l = (len as u32).min(size - off);
        let base = slots_as_mut_ptr(f.slots());
        // SAFETY: the runs lie in the record's filled slots, which the consumer owns.
        let mut nc = unsafe { to.copy_to_user(0, base.add(off as usize), l as usize) };
        if nc == 0 {
            // SAFETY: the wrapped run starts at byte 0 and is `len - l` bytes, within the record
            // being read, which only the consumer (us) reads.
            nc = unsafe { to.copy_to_user(l as usize, base, len - l as usize) };
        }
        if nc != 0 {
            return Err(KfifoError::Fault { copied: 0 });
        }
        self.fifo
            .out
            .store(o.wrapping_add((n + R) as u32), Ordering::Release);
        Ok(len)
    }
}

#[cfg(not(loom))]
impl<const N: usize, const R: usize> KfifoRecInline<N, R> {
    /// `DEFINE_KFIFO` of a `STRUCT_KFIFO_REC_R(N)`: an empty record fifo of `N` bytes.
    pub const fn new() -> Self {
        Self { fifo: Kfifo::new() }
    }
}

impl<const N: usize, const R: usize> Default for KfifoRecInline<N, R> {
    fn default() -> Self {
        Self::from_fifo(Kfifo::default())
    }
}
