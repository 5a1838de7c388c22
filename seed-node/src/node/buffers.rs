//! Recycled buffers for block-sized frame bodies and for pieces read to be served.
//!
//! A received block travels from the link's reader through the swarm to the disk worker, which
//! drops it on its own thread once the piece is written. Left to the allocator, each new body
//! tends to land on memory that was returned to the OS meanwhile, and the kernel faults it back
//! in and zeroes it: a profile of a 256 MiB transfer showed that at over a third of the
//! receiving node's network thread. Here a body's buffer goes back to a pool when its last byte
//! is dropped, and the next body reuses it while it is still mapped. Pieces a seed reads
//! from disk to serve go the same way. A pool that nobody drew
//! from for a while is emptied ([`BufferPool::trim_if_idle`]), so an idle node holds nothing.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use bytes::Bytes;
use pollen_core::wire::MAX_BLOCK_LEN;

/// Capacity of a pooled frame buffer: a block and its frame header, with room to spare.
const FRAME_CAPACITY: usize = MAX_BLOCK_LEN + 1024;
/// Frame bodies shorter than this are left to the allocator, which recycles small blocks well.
const MIN_POOLED_FRAME: usize = 16 * 1024;
/// Most bytes a frame pool keeps. Written pieces are freed in bursts, one group commit at a
/// time, so the pool must hold about as much as a download keeps waiting for the disk (the
/// swarm's pending cap), or the next burst of reads allocates fresh memory again.
const MAX_POOLED_FRAMES: usize = 64 << 20;

/// A pool of equally sized buffers; cloning shares it.
#[derive(Debug, Clone)]
pub(crate) struct BufferPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Capacity of every pooled buffer.
    capacity: usize,
    /// Most buffers kept.
    max_pooled: usize,
    free: Mutex<Vec<Vec<u8>>>,
    /// A buffer was taken since the last [`BufferPool::trim_if_idle`].
    used: AtomicBool,
}

impl BufferPool {
    /// A pool of buffers of `capacity` bytes that keeps at most `max_bytes` of them.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity,
                max_pooled: (max_bytes / capacity.max(1)).max(1),
                free: Mutex::new(Vec::new()),
                used: AtomicBool::new(false),
            }),
        }
    }

    /// The node-wide pool for received frame bodies.
    pub(crate) fn for_frames() -> Self {
        Self::new(FRAME_CAPACITY, MAX_POOLED_FRAMES)
    }

    /// An empty buffer for a frame body of `len` bytes: a recycled one when `len` is
    /// block-sized, a fresh one otherwise.
    pub(crate) fn take_frame(&self, len: usize) -> PooledBuf {
        if (MIN_POOLED_FRAME..=self.inner.capacity).contains(&len) {
            let mut buf = self.take();
            buf.vec().clear();
            buf
        } else {
            PooledBuf {
                buf: Vec::with_capacity(len),
                pool: None,
            }
        }
    }

    /// A buffer of this pool's capacity, recycled when one is free. Its contents are
    /// unspecified (a recycled buffer keeps its length and bytes).
    pub(crate) fn take(&self) -> PooledBuf {
        self.inner.used.store(true, Ordering::Relaxed);
        let recycled = self.inner.free.lock().ok().and_then(|mut free| free.pop());
        PooledBuf {
            buf: recycled.unwrap_or_else(|| Vec::with_capacity(self.inner.capacity)),
            pool: Some(self.clone()),
        }
    }

    /// Frees the pooled buffers if none was taken since the last call; call it every few
    /// seconds.
    pub(crate) fn trim_if_idle(&self) {
        if !self.inner.used.swap(false, Ordering::Relaxed) {
            let idle = self.inner.free.lock().map(|mut f| std::mem::take(&mut *f));
            drop(idle);
        }
    }

    /// Buffers waiting for reuse.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    fn give_back(&self, buf: Vec<u8>) {
        // Only buffers of the pooled size go back, so the pool never grows its memory.
        if buf.capacity() != self.inner.capacity {
            return;
        }
        if let Ok(mut free) = self.inner.free.lock()
            && free.len() < self.inner.max_pooled
        {
            free.push(buf);
        }
    }
}

/// A buffer being filled; [`PooledBuf::freeze`] turns it into shared bytes that return the
/// buffer to its pool when the last of them is dropped.
#[derive(Debug)]
pub(crate) struct PooledBuf {
    buf: Vec<u8>,
    pool: Option<BufferPool>,
}

impl PooledBuf {
    /// The buffer to fill.
    pub(crate) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The contents as shared bytes.
    pub(crate) fn freeze(mut self) -> Bytes {
        match self.pool {
            None => Bytes::from(std::mem::take(&mut self.buf)),
            Some(_) => Bytes::from_owner(self),
        }
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_bodies_are_recycled_once_every_slice_is_dropped() {
        let pool = BufferPool::for_frames();
        let mut body = pool.take_frame(MAX_BLOCK_LEN);
        body.vec().extend_from_slice(&[7; 100]);
        let first = body.vec().as_ptr();
        let bytes = body.freeze();
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.len(), 0, "a slice still borrows the buffer");
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(pool.len(), 1);

        let mut again = pool.take_frame(MIN_POOLED_FRAME);
        assert_eq!(again.vec().as_ptr(), first, "the same memory is reused");
        assert!(again.vec().is_empty(), "a recycled buffer starts empty");
    }

    #[test]
    fn small_and_oversize_bodies_bypass_the_pool() {
        let pool = BufferPool::for_frames();
        for len in [0, 100, MIN_POOLED_FRAME - 1, FRAME_CAPACITY + 1] {
            let mut body = pool.take_frame(len);
            body.vec().resize(len, 1);
            let bytes = body.freeze();
            assert_eq!(bytes.len(), len);
            drop(bytes);
        }
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn the_pool_is_bounded() {
        let pool = BufferPool::for_frames();
        let bodies: Vec<Bytes> = (0..MAX_POOLED_FRAMES / FRAME_CAPACITY + 10)
            .map(|_| pool.take_frame(MAX_BLOCK_LEN).freeze())
            .collect();
        drop(bodies);
        assert_eq!(pool.len(), MAX_POOLED_FRAMES / FRAME_CAPACITY);
    }

    #[test]
    fn an_idle_pool_is_emptied() {
        let pool = BufferPool::for_frames();
        drop(pool.take_frame(MAX_BLOCK_LEN).freeze());
        pool.trim_if_idle();
        assert_eq!(pool.len(), 1, "a buffer was taken since the last trim");
        pool.trim_if_idle();
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn a_grown_buffer_is_not_pooled() {
        let pool = BufferPool::for_frames();
        let mut body = pool.take_frame(MAX_BLOCK_LEN);
        body.vec().resize(FRAME_CAPACITY * 2, 0);
        drop(body.freeze());
        assert_eq!(pool.len(), 0);
    }
}
