//! The Linux-named `kfifo_*` functions over both kinds of fifo, through the [`Fifo`] trait.

use super::*;

/// What `kfifo_*` functions dispatch on: element fifos and record fifos.
pub trait Fifo {
    /// The element type (bytes for record fifos).
    type Elem: Copy;
    /// `kfifo_in`.
    fn fifo_in(&mut self, buf: &[Self::Elem]) -> usize;
    /// `kfifo_out`.
    fn fifo_out(&mut self, buf: &mut [Self::Elem]) -> usize;
    /// `kfifo_out_peek`.
    fn fifo_out_peek(&self, buf: &mut [Self::Elem]) -> usize;
    /// `kfifo_skip`.
    fn fifo_skip(&mut self);
    /// `kfifo_len`.
    fn fifo_len(&self) -> usize;
    /// `kfifo_size`.
    fn fifo_size(&self) -> usize;
    /// `kfifo_avail`.
    fn fifo_avail(&self) -> usize;
    /// `kfifo_reset`.
    fn fifo_reset(&mut self);
    /// `kfifo_peek_len`: the next record's length (for element fifos, `kfifo_len`).
    fn fifo_peek_len(&self) -> usize;
}

impl<T: Copy, S: Storage<T>> Fifo for KfifoBase<T, S> {
    type Elem = T;
    fn fifo_in(&mut self, buf: &[T]) -> usize {
        self.push_slice(buf)
    }
    fn fifo_out(&mut self, buf: &mut [T]) -> usize {
        self.pop_slice(buf)
    }
    fn fifo_out_peek(&self, buf: &mut [T]) -> usize {
        self.peek_slice(buf)
    }
    fn fifo_skip(&mut self) {
        self.skip(1)
    }
    fn fifo_len(&self) -> usize {
        self.len()
    }
    fn fifo_size(&self) -> usize {
        self.size()
    }
    fn fifo_avail(&self) -> usize {
        self.avail()
    }
    fn fifo_reset(&mut self) {
        self.reset()
    }
    fn fifo_peek_len(&self) -> usize {
        self.len()
    }
}

impl<S: Storage<u8>, const R: usize> Fifo for KfifoRec<S, R> {
    type Elem = u8;
    fn fifo_in(&mut self, buf: &[u8]) -> usize {
        self.push(buf)
    }
    fn fifo_out(&mut self, buf: &mut [u8]) -> usize {
        self.pop(buf)
    }
    fn fifo_out_peek(&self, buf: &mut [u8]) -> usize {
        self.peek(buf)
    }
    fn fifo_skip(&mut self) {
        self.skip()
    }
    fn fifo_len(&self) -> usize {
        self.len()
    }
    fn fifo_size(&self) -> usize {
        self.size()
    }
    fn fifo_avail(&self) -> usize {
        self.avail()
    }
    fn fifo_reset(&mut self) {
        self.reset()
    }
    fn fifo_peek_len(&self) -> usize {
        self.peek_len()
    }
}

/// `kfifo_in(fifo, buf, n)`: elements (or one record) in; returns how many elements (bytes).
pub fn kfifo_in<F: Fifo + ?Sized>(fifo: &mut F, buf: &[F::Elem]) -> usize {
    fifo.fifo_in(buf)
}
/// `kfifo_out(fifo, buf, n)`.
pub fn kfifo_out<F: Fifo + ?Sized>(fifo: &mut F, buf: &mut [F::Elem]) -> usize {
    fifo.fifo_out(buf)
}
/// `kfifo_out_peek(fifo, buf, n)`.
pub fn kfifo_out_peek<F: Fifo + ?Sized>(fifo: &F, buf: &mut [F::Elem]) -> usize {
    fifo.fifo_out_peek(buf)
}
/// `kfifo_skip(fifo)`: drops one element or record.
pub fn kfifo_skip<F: Fifo + ?Sized>(fifo: &mut F) {
    fifo.fifo_skip()
}
/// `kfifo_reset(fifo)`.
pub fn kfifo_reset<F: Fifo + ?Sized>(fifo: &mut F) {
    fifo.fifo_reset()
}
/// `kfifo_size(fifo)`.
pub fn kfifo_size<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_size()
}
/// `kfifo_len(fifo)`.
pub fn kfifo_len<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_len()
}
/// `kfifo_avail(fifo)`.
pub fn kfifo_avail<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_avail()
}
/// `kfifo_is_empty(fifo)`.
pub fn kfifo_is_empty<F: Fifo + ?Sized>(fifo: &F) -> bool {
    fifo.fifo_len() == 0
}
/// `kfifo_is_full(fifo)`.
pub fn kfifo_is_full<F: Fifo + ?Sized>(fifo: &F) -> bool {
    fifo.fifo_len() >= fifo.fifo_size()
}
/// `kfifo_peek_len(fifo)`.
pub fn kfifo_peek_len<F: Fifo + ?Sized>(fifo: &F) -> usize {
    fifo.fifo_peek_len()
}
/// `kfifo_put(fifo, val)`: returns whether it was stored.
pub fn kfifo_put<T: Copy, S: Storage<T>>(fifo: &mut KfifoBase<T, S>, val: T) -> bool {
    fifo.put(val)
}
/// `kfifo_get(fifo, &val)`.
pub fn kfifo_get<T: Copy, S: Storage<T>>(fifo: &mut KfifoBase<T, S>) -> Option<T> {
    fifo.get()
}
/// `kfifo_peek(fifo, &val)`.
pub fn kfifo_peek<T: Copy, S: Storage<T>>(fifo: &KfifoBase<T, S>) -> Option<T> {
    fifo.peek()
}
/// `kfifo_alloc(fifo, size, gfp)`.
///
/// # Errors
/// As [`KfifoBase::alloc`].
pub fn kfifo_alloc<T: Copy, A: KfifoAlloc>(
    size: usize,
    alloc: A,
) -> Result<KfifoAllocated<T, A>, KfifoError> {
    KfifoAllocated::alloc(size, alloc)
}
/// `kfifo_free(fifo)`: frees the buffer (dropping does the same).
pub fn kfifo_free<T: Copy, A: KfifoAlloc>(fifo: KfifoAllocated<T, A>) {
    drop(fifo)
}
/// `kfifo_init(fifo, buffer, size)`.
///
/// # Errors
/// As [`KfifoBase::init`].
pub fn kfifo_init<T: Copy>(buffer: &mut [T]) -> Result<KfifoBuffer<'_, T>, KfifoError> {
    KfifoBuffer::init(buffer)
}
