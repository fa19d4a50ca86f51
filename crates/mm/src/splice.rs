//! Pipes and vmsplice() (fs/pipe.c, fs/splice.c: vmsplice_to_pipe() →
//! iter_to_pipe()).
//!
//! vmsplice() does not copy: each pipe buffer holds a reference to a page of
//! the caller's memory, taken with GUP-fast (FOLL_GET in 6.18, read-only).
//! The reference lives until a reader consumes the buffer or the pipe goes
//! away. A pipe has 16 buffers (PIPE_DEF_BUFFERS); vmsplice() fills what fits
//! and returns the byte count. A write or vmsplice into a pipe whose read
//! ends are all closed sends SIGPIPE, whose default action kills the task
//! (the EPIPE it returns is seen only by a task that ignores SIGPIPE, and
//! the model's tasks do not). Left out: F_SETPIPE_SZ, splice() to files,
//! gifting (SPLICE_F_GIFT), blocking — a call that would block returns
//! EAGAIN here, because nothing can run concurrently within one step.

use crate::contents::Contents;
use crate::events::EventKind;
use crate::folio::FolioId;
use crate::gup::GupFlags;
use crate::kernel::{File, Kernel, PipeId};
use crate::policy::VmspliceGup;
use crate::types::*;
use std::collections::VecDeque;

/// PIPE_DEF_BUFFERS.
pub const PIPE_BUFFERS: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PipeBuf {
    /// A page of user memory (vmsplice): `len` bytes from `off`.
    Page { folio: FolioId, page: u64, off: u64, len: u64, pin: bool },
    /// Bytes copied in by write(2).
    Copy(Contents),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Pipe {
    pub(crate) bufs: VecDeque<PipeBuf>,
    readers: u32,
    writers: u32,
}

impl Kernel {
    /// pipe(2): returns (read end, write end).
    pub fn pipe(&mut self, pid: Pid) -> SysResult<(Fd, Fd)> {
        self.task(pid)?;
        let id = PipeId(self.fresh_id());
        self.pipes.insert(id, Pipe::default());
        let r = self.install_fd(pid, File::PipeRead(id));
        let w = self.install_fd(pid, File::PipeWrite(id));
        Ok((r, w))
    }

    pub(crate) fn pipe_file_get(&mut self, p: PipeId, write: bool) {
        let pipe = self.pipes.get_mut(&p).expect("fd refers to a live pipe");
        if write {
            pipe.writers += 1;
        } else {
            pipe.readers += 1;
        }
    }

    /// Last close of both ends frees the pipe and its buffers' references.
    pub(crate) fn pipe_file_put(&mut self, p: PipeId, write: bool) {
        let pipe = self.pipes.get_mut(&p).expect("fd refers to a live pipe");
        if write {
            pipe.writers -= 1;
        } else {
            pipe.readers -= 1;
        }
        if pipe.readers == 0 && pipe.writers == 0 {
            let pipe = self.pipes.remove(&p).expect("present");
            for b in pipe.bufs {
                self.pipe_buf_release(b);
            }
        }
    }

    fn pipe_buf_release(&mut self, b: PipeBuf) {
        if let PipeBuf::Page { folio, pin, .. } = b {
            self.gup_put_folio(folio, 1, pin);
        }
    }

    fn pipe_of_fd(&self, pid: Pid, fd: Fd, write: bool) -> SysResult<PipeId> {
        match (self.task(pid)?.fds.get(&fd.0), write) {
            (Some(File::PipeWrite(p)), true) | (Some(File::PipeRead(p)), false) => Ok(*p),
            (Some(_), _) => Err(Errno::EBADF.into()),
            (None, _) => Err(Errno::EBADF.into()),
        }
    }

    /// `wait_for_space()` (fs/splice.c) and the same test in `pipe_write()`
    /// (fs/pipe.c): no reader left → SIGPIPE (and EPIPE); a full pipe
    /// would block → EAGAIN.
    fn wait_for_space(&mut self, pid: Pid, p: PipeId, addr: Option<u64>) -> SysResult<()> {
        if self.pipes[&p].readers == 0 {
            return self.fatal_signal(pid, Signal::SIGPIPE, "send_sig", addr);
        }
        if self.pipes[&p].bufs.len() >= PIPE_BUFFERS {
            return Err(Errno::EAGAIN.into());
        }
        Ok(())
    }

    /// vmsplice(2) of `[addr, addr+len)` into the pipe behind `fd`
    /// (`vmsplice_to_pipe()`). An empty range returns 0 before the pipe is
    /// looked at.
    pub fn vmsplice(&mut self, pid: Pid, fd: Fd, addr: u64, len: u64) -> SysResult<u64> {
        let p = self.pipe_of_fd(pid, fd, true)?;
        if len == 0 {
            return Ok(0);
        }
        self.wait_for_space(pid, p, Some(addr))?;
        let room = PIPE_BUFFERS - self.pipes[&p].bufs.len();
        let flags = match self.policy.vmsplice {
            VmspliceGup::Get => GupFlags::GET,
            VmspliceGup::Pin => GupFlags::PIN,
        };
        let first = page_align_down(addr);
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        let nr = (end.next_multiple_of(PAGE_SIZE) - first) / PAGE_SIZE;
        let nr = nr.min(room as u64);
        // iov_iter_get_pages2() (GUP-fast, then the slow path) takes what
        // GUP got; vmsplice() reports the
        // bytes it spliced and fails only when that is nothing.
        let (pages, err) = self.gup_pages_upto(pid, first, nr, flags, true).map_err(|_| Errno::EFAULT)?;
        match err {
            // The OOM killer ended the task while GUP faulted pages in.
            Some(e @ SysError::Signal(_)) => return Err(e),
            Some(_) if pages.is_empty() => return Err(Errno::EFAULT.into()),
            _ => {}
        }
        let nr = pages.len();
        let mut done = 0u64;
        for (i, (folio, page)) in pages.iter().enumerate() {
            let pa = first + i as u64 * PAGE_SIZE;
            let off = addr.max(pa) - pa;
            let n = (PAGE_SIZE - off).min(end - pa - off);
            self.pipes.get_mut(&p).expect("present").bufs.push_back(PipeBuf::Page { folio, page, off, len: n, pin: flags.pin });
            done += n;
        }
        self.event(pid, EventKind::Gup, "vmsplice_to_pipe", Some(addr), || {
            format!("{done} bytes, {nr} page reference(s) held by the pipe ({})", if flags.pin { "FOLL_PIN" } else { "FOLL_GET" })
        });
        Ok(done)
    }

    /// read(2) on a pipe (`pipe_read()`): consumes buffers, dropping their
    /// page references. An empty pipe without writers is end of file (0
    /// bytes); with a writer the read would block: EAGAIN.
    pub(crate) fn pipe_read(&mut self, _pid: Pid, p: PipeId, len: u64) -> SysResult<Contents> {
        let mut out = Contents::default();
        if self.pipes[&p].bufs.is_empty() {
            if self.pipes[&p].writers == 0 {
                return Ok(out);
            }
            return Err(Errno::EAGAIN.into());
        }
        while out.len() < len {
            let Some(b) = self.pipes.get_mut(&p).expect("present").bufs.pop_front() else { break };
            let want = len - out.len();
            match b {
                PipeBuf::Copy(c) => {
                    let n = want.min(c.len());
                    out.append(&c.slice(0, n));
                    if n < c.len() {
                        let rest = c.slice(n, c.len() - n);
                        self.pipes.get_mut(&p).expect("present").bufs.push_front(PipeBuf::Copy(rest));
                    }
                }
                PipeBuf::Page { folio, page, off, len: blen, pin } => {
                    let n = want.min(blen);
                    out.append(&self.folios.get(folio).data.slice(page * PAGE_SIZE + off, n));
                    if n < blen {
                        self.pipes.get_mut(&p).expect("present").bufs.push_front(PipeBuf::Page {
                            folio,
                            page,
                            off: off + n,
                            len: blen - n,
                            pin,
                        });
                    } else {
                        self.gup_put_folio(folio, 1, pin);
                    }
                }
            }
        }
        Ok(out)
    }

    /// write(2) to a pipe (`pipe_write()`): copies the bytes; writing
    /// nothing succeeds before the pipe is looked at.
    pub fn write_fd(&mut self, pid: Pid, fd: Fd, data: &Contents) -> SysResult<u64> {
        match self.task(pid)?.fds.get(&fd.0).copied() {
            Some(File::PipeWrite(p)) => {
                if data.is_empty() {
                    return Ok(0);
                }
                self.wait_for_space(pid, p, None)?;
                self.pipes.get_mut(&p).expect("present").bufs.push_back(PipeBuf::Copy(data.clone()));
                Ok(data.len())
            }
            Some(File::Inode(i)) => {
                self.file_write(i, 0, data)?;
                Ok(data.len())
            }
            Some(_) => Err(Errno::EINVAL.into()),
            None => Err(Errno::EBADF.into()),
        }
    }

    /// Bytes waiting in the pipe behind `fd`.
    pub fn pipe_pending(&self, pid: Pid, fd: Fd) -> SysResult<u64> {
        let p = match self.task(pid)?.fds.get(&fd.0) {
            Some(File::PipeRead(p)) | Some(File::PipeWrite(p)) => *p,
            _ => return Err(Errno::EBADF.into()),
        };
        Ok(self.pipes[&p]
            .bufs
            .iter()
            .map(|b| match b {
                PipeBuf::Copy(c) => c.len(),
                PipeBuf::Page { len, .. } => *len,
            })
            .sum())
    }
}
