//! [`OutQueue`]: the frames queued for one socket, written in batches with one `sendmsg`
//! each. Frames are shared `Bytes`: a broadcast frame sits in many queues at the cost of a
//! refcount. An empty queue holds no memory.

use crate::limits::WRITE_BATCH_FRAMES_MAX;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

#[derive(Debug, Default)]
pub(super) struct OutQueue {
    frames: VecDeque<Bytes>,
    /// Bytes of the first frame already written.
    head_written: usize,
    /// Bytes waiting (for the per-socket and shard-wide limits).
    queued: usize,
}

/// What a flush achieved.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Flush {
    /// Everything queued is written.
    Done,
    /// The socket is full; wait for writability.
    Blocked,
}

impl OutQueue {
    pub fn push(&mut self, frame: Bytes) {
        self.queued += frame.len();
        self.frames.push_back(frame);
    }

    /// Puts a frame before everything queued (the `101` before frames `on_connect` sent).
    pub fn push_front(&mut self, frame: Bytes) {
        debug_assert_eq!(self.head_written, 0);
        self.queued += frame.len();
        self.frames.push_front(frame);
    }

    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Drops everything queued except the rest of a frame already partly written (cutting
    /// it would leave the peer mid-frame, so a close frame queued next would be read as
    /// payload), and frees the queue's memory.
    pub fn drop_unsent(&mut self) {
        if self.head_written == 0 {
            *self = OutQueue::default();
            return;
        }
        let head = self.frames.pop_front().map(|f| f.slice(self.head_written..));
        *self = OutQueue::default();
        if let Some(rest) = head {
            self.push(rest);
        }
    }

    /// The unwritten part of the first frame.
    pub fn head(&self) -> Option<&[u8]> {
        self.frames.front().map(|f| &f[self.head_written..])
    }

    /// Marks `n` bytes as written.
    pub fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let left = front.len() - self.head_written;
            if n < left {
                self.head_written += n;
                return;
            }
            n -= left;
            self.head_written = 0;
            self.frames.pop_front();
        }
        if self.frames.is_empty() {
            // Give back the ring's memory: an idle connection holds no queue.
            self.frames = VecDeque::new();
        }
    }

    /// Writes as much as the socket takes without blocking, up to
    /// [`WRITE_BATCH_FRAMES_MAX`] frames per system call.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<Flush> {
        while !self.frames.is_empty() {
            match self.write_with(|slices| crate::rt::send_vectored(fd, slices)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flush::Done)
    }

    /// Hands the next [`WRITE_BATCH_FRAMES_MAX`] frames (the first from where it was left)
    /// to `write` as one vectored write, and takes off what it wrote: a system call, or a
    /// TLS session encrypting them into records.
    pub fn write_with(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut slices: [IoSlice<'_>; WRITE_BATCH_FRAMES_MAX] =
            [IoSlice::new(&[]); WRITE_BATCH_FRAMES_MAX];
        let mut count = 0;
        for (i, frame) in self.frames.iter().take(slices.len()).enumerate() {
            let start = if i == 0 { self.head_written } else { 0 };
            slices[count] = IoSlice::new(&frame[start..]);
            count += 1;
        }
        let n = write(&slices[..count])?;
        self.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_unsent_frames_keeps_the_rest_of_a_partly_written_one() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"abcdef"));
        q.push(Bytes::from_static(b"ghi"));
        q.advance(2);
        assert_eq!((q.head(), q.queued()), (Some(&b"cdef"[..]), 7));
        q.drop_unsent();
        assert_eq!((q.head(), q.queued()), (Some(&b"cdef"[..]), 4));
        q.advance(4);
        assert!(q.is_empty());
        q.push(Bytes::from_static(b"x"));
        q.drop_unsent();
        assert_eq!((q.is_empty(), q.queued()), (true, 0));
    }
}
