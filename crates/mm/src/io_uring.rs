//! io_uring fixed buffers (io_uring/rsrc.c: io_sqe_buffers_register(),
//! io_buffer_validate(), io_sqe_buffer_register(); io_uring/memmap.c:
//! io_pin_pages()).
//!
//! Registration takes a list of iovecs (at most IORING_MAX_REG_BUFFERS; an
//! empty list is EINVAL) and handles them in order: each is validated — a
//! NULL base with length 0 is a sparse slot that pins nothing, a NULL base
//! with a length is EFAULT, and so is a length of 0 or above 1 GiB — then
//! its pages are pinned with pin_user_pages_fast(FOLL_WRITE | FOLL_PIN |
//! FOLL_LONGTERM): anon pages are write-faulted to be exclusive and
//! writable; a MAP_SHARED file on a disk filesystem is refused with EFAULT
//! (check_vma_flags()), and a partial pin is EFAULT too. The first failure
//! undoes the whole registration. WRITE_FIXED stores the pinned pages'
//! current bytes into a file, READ_FIXED loads file bytes into them — the
//! pages the ring holds, whatever the process maps there now; a sparse slot
//! is EFAULT there. A ring made by a task without CAP_IPC_LOCK (the machine
//! knob `rlimit_memlock` set) charges each buffer's pages to the user's
//! `locked_vm` against RLIMIT_MEMLOCK (`io_buffer_account_pin()`,
//! `io_account_mem()`): ENOMEM beyond it. Left out: huge-page coalescing of
//! buffers, buffer tags, the submission queue itself.

use crate::events::EventKind;
use crate::folio::{FolioId, InodeId};
use crate::gup::{GupFlags, PageList};
use crate::kernel::{File, Kernel, RingId};
use crate::types::*;

/// `MAX_RW_COUNT`: the most one read or write transfers (INT_MAX rounded
/// down to a page).
const MAX_RW_COUNT: u64 = (i32::MAX as u64) & !(PAGE_SIZE - 1);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RegBuf {
    addr: u64,
    len: u64,
    pub(crate) pages: PageList,
    /// Pages charged to the user's `locked_vm` (`imu->acct_pages`).
    acct_pages: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ring {
    pub(crate) opens: u32,
    /// The buffer table, by index; `None` is a sparse slot.
    pub(crate) bufs: Vec<Option<RegBuf>>,
}

/// IORING_MAX_REG_BUFFERS.
const IORING_MAX_REG_BUFFERS: usize = 1 << 14;

/// The largest buffer io_validate_user_buf_range() accepts (SZ_1G).
const MAX_BUF_LEN: u64 = 1 << 30;

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

    /// IORING_REGISTER_BUFFERS (`io_sqe_buffers_register()`): all or
    /// nothing. `(0, 0)` is a sparse slot.
    pub fn io_uring_register_buffers(&mut self, pid: Pid, ring: Fd, iovs: &[(u64, u64)]) -> SysResult<()> {
        let r = self.ring_of_fd(pid, ring)?;
        if !self.rings[&r].bufs.is_empty() {
            return Err(Errno::EBUSY.into());
        }
        if iovs.is_empty() || iovs.len() > IORING_MAX_REG_BUFFERS {
            return Err(Errno::EINVAL.into());
        }
        let mut bufs: Vec<Option<RegBuf>> = Vec::new();
        let mut last_hpage = None;
        for &(addr, len) in iovs {
            let got = Kernel::io_buffer_validate(addr, len).and_then(|()| self.io_sqe_buffer_register(pid, addr, len));
            let got = match got {
                Ok(Some(mut b)) => {
                    let charged: u64 = bufs.iter().flatten().map(|b| b.acct_pages).sum();
                    match self.io_buffer_account_pin(&mut b, &mut last_hpage, charged) {
                        Ok(()) => Ok(Some(b)),
                        Err(e) => {
                            self.release_pages(&b.pages, true);
                            Err(e)
                        }
                    }
                }
                other => other,
            };
            match got {
                Ok(b) => bufs.push(b),
                Err(e) => {
                    for b in bufs.into_iter().flatten() {
                        self.release_pages(&b.pages, true);
                    }
                    self.event(pid, EventKind::Gup, "io_sqe_buffers_register", Some(addr), || format!("buffer ({addr:#x}, {len}): {e}"));
                    return Err(e);
                }
            }
        }
        let n: u64 = bufs.iter().flatten().map(|b| b.pages.len()).sum();
        self.event(pid, EventKind::Gup, "io_sqe_buffers_register", iovs.first().map(|i| i.0), || {
            format!("{} slot(s), {n} page(s) pinned FOLL_PIN|FOLL_WRITE|FOLL_LONGTERM", iovs.len())
        });
        self.rings.get_mut(&r).expect("present").bufs = bufs;
        Ok(())
    }

    /// `io_buffer_validate()` → `io_validate_user_buf_range()`: a NULL base
    /// is a sparse slot if the length is 0 and EFAULT otherwise; a length of
    /// 0 or above 1 GiB is EFAULT; a range whose page-rounded end overflows
    /// is EOVERFLOW.
    fn io_buffer_validate(addr: u64, len: u64) -> SysResult<()> {
        if addr == 0 {
            return if len == 0 { Ok(()) } else { Err(Errno::EFAULT.into()) };
        }
        if len == 0 || len > MAX_BUF_LEN {
            return Err(Errno::EFAULT.into());
        }
        if addr.checked_add(len.next_multiple_of(PAGE_SIZE)).is_none() {
            return Err(Errno::EOVERFLOW.into());
        }
        Ok(())
    }

    /// `io_sqe_buffer_register()` → `io_pin_pages()` for one validated
    /// iovec: nothing for a sparse slot, else every page it touches pinned,
    /// or the error. A partial pin is released and reported as EFAULT; an
    /// error before the first page is GUP's own.
    fn io_sqe_buffer_register(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<Option<RegBuf>> {
        if addr == 0 {
            return Ok(None);
        }
        let first = page_align_down(addr);
        let end = (addr + len).checked_next_multiple_of(PAGE_SIZE).ok_or(Errno::EOVERFLOW)?;
        let nr = (end - first) / PAGE_SIZE;
        let flags = GupFlags::PIN.with_write().with_longterm();
        let (pages, err) = self.gup_pages_upto(pid, first, nr, flags, true)?;
        match err {
            None => Ok(Some(RegBuf { addr, len, pages, acct_pages: 0 })),
            Some(e) => {
                let e = if pages.is_empty() { e } else { Errno::EFAULT.into() };
                self.release_pages(&pages, true);
                Err(e)
            }
        }
    }

    /// `io_buffer_account_pin()` → `io_account_mem()`: a small page counts
    /// one, a large folio all its pages once (skipped when it is the last
    /// one counted, `last_hpage`, also across the buffers of one
    /// registration, or already counted earlier in this buffer). With
    /// RLIMIT_MEMLOCK in force the user's locked pages — every registered
    /// buffer of every ring plus `pending` of this registration — may not
    /// pass it: ENOMEM.
    fn io_buffer_account_pin(&mut self, b: &mut RegBuf, last_hpage: &mut Option<FolioId>, pending: u64) -> SysResult<()> {
        let mut acct = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        // A stretch of pages of one folio is looked at once: after its
        // first page a large folio is `last_hpage`, which skips the rest.
        for (folio, n) in b.pages.folio_stretches() {
            let nr = self.folios.get(folio).nr_pages();
            if nr == 1 {
                acct += n;
                continue;
            }
            if *last_hpage == Some(folio) {
                continue;
            }
            *last_hpage = Some(folio);
            if seen.insert(folio) {
                acct += nr;
            }
        }
        if let Some(limit) = self.machine.rlimit_memlock {
            let locked: u64 = self.rings.values().flat_map(|r| r.bufs.iter().flatten()).map(|b| b.acct_pages).sum::<u64>() + pending;
            if acct > 0 && locked.saturating_add(acct) > limit / PAGE_SIZE {
                return Err(Errno::ENOMEM.into());
            }
            b.acct_pages = acct;
        }
        Ok(())
    }

    /// IORING_UNREGISTER_BUFFERS: unpin everything.
    pub fn io_uring_unregister_buffers(&mut self, pid: Pid, ring: Fd) -> SysResult<()> {
        let r = self.ring_of_fd(pid, ring)?;
        let bufs = std::mem::take(&mut self.rings.get_mut(&r).expect("present").bufs);
        if bufs.is_empty() {
            return Err(Errno::ENXIO.into());
        }
        for b in bufs.into_iter().flatten() {
            self.release_pages(&b.pages, true);
        }
        Ok(())
    }

    pub(crate) fn ring_file_put(&mut self, r: RingId) {
        let ring = self.rings.get_mut(&r).expect("fd refers to a live ring");
        ring.opens -= 1;
        if ring.opens == 0 {
            let ring = self.rings.remove(&r).expect("present");
            for b in ring.bufs.into_iter().flatten() {
                self.release_pages(&b.pages, true);
            }
        }
    }

    /// The fixed buffer `index` and the offset of `[addr, addr+len)` in its
    /// pinned pages (`validate_fixed_range()`: an end that wraps, a range
    /// outside the buffer or one longer than MAX_RW_COUNT is EFAULT).
    fn fixed_range(&self, r: RingId, index: usize, addr: u64, len: u64) -> SysResult<(&RegBuf, u64)> {
        let b = self.rings[&r].bufs.get(index).and_then(Option::as_ref).ok_or(Errno::EFAULT)?;
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
        // io_write(): the buffer was imported at prep, the area is checked
        // at issue.
        crate::shmem::rw_verify_area(file_off, len)?;
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
        crate::shmem::rw_verify_area(file_off, len)?;
        let data = self.file_read(ino, file_off, len);
        let (b, off) = self.fixed_range(r, index, addr, data.len())?;
        let pages = b.pages.clone();
        self.write_pages(&pages, off, &data);
        Ok(data.len())
    }
}
