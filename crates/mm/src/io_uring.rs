//! io_uring fixed buffers (io_uring/rsrc.c: io_sqe_buffer_register(),
//! io_uring/memmap.c: io_pin_pages()).
//!
//! Registration pins every page with pin_user_pages_fast(FOLL_WRITE |
//! FOLL_PIN | FOLL_LONGTERM): anon pages are write-faulted to be exclusive
//! and writable; a MAP_SHARED file on a disk filesystem is refused with
//! EFAULT (check_vma_flags()). WRITE_FIXED stores the pinned pages' current
//! bytes into a file, READ_FIXED loads file bytes into them — the pages the
//! ring holds, whatever the process maps there now. Left out: RLIMIT_MEMLOCK
//! accounting, huge-page coalescing of buffers, the submission queue itself.

use crate::events::EventKind;
use crate::folio::{FolioId, InodeId};
use crate::gup::GupFlags;
use crate::kernel::{File, Kernel, RingId};
use crate::types::*;

/// `MAX_RW_COUNT`: the most one read or write transfers (INT_MAX rounded
/// down to a page).
const MAX_RW_COUNT: u64 = (i32::MAX as u64) & !(PAGE_SIZE - 1);

/// `io_validate_user_buf_range()` for one iovec at registration: empty or
/// over 1 GiB is EFAULT, an end past 2^64 EOVERFLOW.
fn io_validate_user_buf_range(addr: u64, len: u64) -> SysResult<()> {
    if len == 0 || len > 1 << 30 {
        return Err(Errno::EFAULT.into());
    }
    if addr.checked_add(len.next_multiple_of(PAGE_SIZE)).is_none() {
        return Err(Errno::EOVERFLOW.into());
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RegBuf {
    addr: u64,
    len: u64,
    pub(crate) pages: Vec<(FolioId, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ring {
    pub(crate) opens: u32,
    pub(crate) bufs: Vec<RegBuf>,
}

impl Kernel {
    /// io_uring_setup(2).
    pub fn io_uring_setup(&mut self, pid: Pid) -> SysResult<Fd> {
        self.task(pid)?;
        let id = RingId(self.fresh_id());
        self.rings.insert(id, Ring::default());
        Ok(self.install_fd(pid, File::Ring(id)))
    }

    fn ring_of_fd(&self, pid: Pid, fd: Fd) -> SysResult<RingId> {
        match self.task(pid)?.fds.get(&fd.0) {
            Some(File::Ring(r)) => Ok(*r),
            Some(_) => Err(Errno::EINVAL.into()),
            None => Err(Errno::EBADF.into()),
        }
    }

    /// IORING_REGISTER_BUFFERS: all or nothing.
    pub fn io_uring_register_buffers(&mut self, pid: Pid, ring: Fd, iovs: &[(u64, u64)]) -> SysResult<()> {
        let r = self.ring_of_fd(pid, ring)?;
        if !self.rings[&r].bufs.is_empty() {
            return Err(Errno::EBUSY.into());
        }
        let flags = GupFlags::PIN.with_write().with_longterm();
        let mut bufs = Vec::new();
        for &(addr, len) in iovs {
            let first = page_align_down(addr);
            // io_buffer_validate() comes before each iovec's pinning.
            let pinned = io_validate_user_buf_range(addr, len).and_then(|()| {
                let nr = ((addr + len).next_multiple_of(PAGE_SIZE) - first) / PAGE_SIZE;
                self.gup_pages(pid, first, nr, flags, true)
            });
            match pinned {
                Ok(pages) => bufs.push(RegBuf { addr, len, pages }),
                Err(e) => {
                    for b in bufs {
                        self.release_pages(&b.pages, true);
                    }
                    self.event(pid, EventKind::Gup, "io_sqe_buffer_register", Some(addr), || format!("pin_user_pages_fast failed: {e}"));
                    return Err(e);
                }
            }
        }
        let n: usize = bufs.iter().map(|b| b.pages.len()).sum();
        self.event(pid, EventKind::Gup, "io_sqe_buffer_register", iovs.first().map(|i| i.0), || format!("{n} page(s) pinned {flags}"));
        self.rings.get_mut(&r).expect("present").bufs = bufs;
        Ok(())
    }

    /// IORING_UNREGISTER_BUFFERS: unpin everything.
    pub fn io_uring_unregister_buffers(&mut self, pid: Pid, ring: Fd) -> SysResult<()> {
        let r = self.ring_of_fd(pid, ring)?;
        let bufs = std::mem::take(&mut self.rings.get_mut(&r).expect("present").bufs);
        if bufs.is_empty() {
            return Err(Errno::ENXIO.into());
        }
        for b in bufs {
            self.release_pages(&b.pages, true);
        }
        Ok(())
    }

    pub(crate) fn ring_file_put(&mut self, r: RingId) {
        let ring = self.rings.get_mut(&r).expect("fd refers to a live ring");
        ring.opens -= 1;
        if ring.opens == 0 {
            let ring = self.rings.remove(&r).expect("present");
            for b in ring.bufs {
                self.release_pages(&b.pages, true);
            }
        }
    }

    /// The fixed buffer `index` and the offset of `[addr, addr+len)` in its
    /// pinned pages (`validate_fixed_range()`: an end that wraps, a range
    /// outside the buffer or one longer than MAX_RW_COUNT is EFAULT).
    fn fixed_range(&self, r: RingId, index: usize, addr: u64, len: u64) -> SysResult<(&RegBuf, u64)> {
        let b = self.rings[&r].bufs.get(index).ok_or(Errno::EFAULT)?;
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        if addr < b.addr || end > b.addr + b.len || len > MAX_RW_COUNT {
            return Err(Errno::EFAULT.into());
        }
        Ok((b, addr - page_align_down(b.addr)))
    }

    /// What a fixed-buffer read and write both start with: the ring behind
    /// `ring`, then the file behind `file`; a failed lookup is the call's
    /// errno.
    fn fixed_op_fds(&self, pid: Pid, ring: Fd, file: Fd) -> SysResult<(RingId, InodeId)> {
        Ok((self.ring_of_fd(pid, ring)?, self.inode_of_fd(pid, file)?))
    }

    /// IORING_OP_WRITE_FIXED: file ← pinned buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn io_uring_write_fixed(
        &mut self,
        pid: Pid,
        ring: Fd,
        index: usize,
        file: Fd,
        file_off: u64,
        addr: u64,
        len: u64,
    ) -> SysResult<u64> {
        let (r, ino) = self.fixed_op_fds(pid, ring, file)?;
        let (b, off) = self.fixed_range(r, index, addr, len)?;
        let data = self.read_pages(&b.pages, off, len);
        self.file_write(ino, file_off, &data)?;
        Ok(len)
    }

    /// IORING_OP_READ_FIXED: pinned buffer ← file.
    #[allow(clippy::too_many_arguments)]
    pub fn io_uring_read_fixed(
        &mut self,
        pid: Pid,
        ring: Fd,
        index: usize,
        file: Fd,
        file_off: u64,
        addr: u64,
        len: u64,
    ) -> SysResult<u64> {
        let (r, ino) = self.fixed_op_fds(pid, ring, file)?;
        self.fixed_range(r, index, addr, len)?;
        let data = self.file_read(ino, file_off, len);
        let (b, off) = self.fixed_range(r, index, addr, data.len())?;
        let pages = b.pages.clone();
        let mut done = 0;
        while done < data.len() {
            let pos = off + done;
            let (f, page) = pages[(pos / PAGE_SIZE) as usize];
            let n = (PAGE_SIZE - pos % PAGE_SIZE).min(data.len() - done);
            let fo = self.folios.get_mut(f);
            fo.data.overwrite(page * PAGE_SIZE + pos % PAGE_SIZE, &data.slice(done, n));
            fo.dirty = true;
            done += n;
        }
        Ok(done)
    }
}
