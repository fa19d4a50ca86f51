//! pread(2) / pwrite(2) on a file opened with O_DIRECT: the buffer's pages
//! are handed to the block layer instead of being copied through the page
//! cache.
//!
//! On a disk file (ext4 here: fs/ext4/file.c `ext4_dio_read_iter()` /
//! `ext4_dio_write_iter()` → fs/iomap/direct-io.c `iomap_dio_rw()` →
//! `iomap_dio_bio_iter()` → block/bio.c `bio_iov_iter_get_pages()` →
//! lib/iov_iter.c `iov_iter_extract_user_pages()`) the buffer is pinned
//! with `pin_user_pages_fast()`: FOLL_PIN, plus FOLL_WRITE when the I/O
//! writes into memory (a read, ITER_DEST); never FOLL_LONGTERM. The pins
//! last until the I/O completes, inside the call, so the data moved is the
//! buffer's contents at the time of the call. The R/O pin of a write from
//! memory follows GUP's rules: an anon page that is not anon-exclusive
//! (shared with a child after fork) is unshared first (`gup_must_unshare()`),
//! so the *writer* ends up with a copy; the R/W pin of a read breaks COW
//! like a write fault.
//!
//! iomap refuses a file position or length that is not a multiple of the
//! device's logical block size (`iomap_dio_bio_iter()`): 512 bytes on this
//! machine's disk (/dev/vda), so the model says EINVAL for those. The
//! buffer's address is not checked on this path in 6.18 (a buffer at a
//! 100-byte offset works on this machine), and not in the model either. A
//! read stops at the end of the file (nothing is pinned at or past it); if
//! the buffer cannot be pinned whole, the I/O covers the pages pinned
//! before the first failure (a short count), or fails with GUP's error.
//!
//! Other files refuse O_DIRECT: `fcntl(F_SETFL, O_DIRECT)` is EINVAL
//! without FMODE_CAN_ODIRECT (fs/fcntl.c, `setfl()`). A memfd (shmem or
//! hugetlbfs) never gets it: only `shmem_file_open()`, the open(2) path of
//! a tmpfs file, sets it, and memfd_create() makes its file with
//! `alloc_file_pseudo()`, which does not call it; hugetlbfs has no
//! `direct_IO` at all. The model's memfds are its only shmem and hugetlbfs
//! files, so both are EINVAL.
//!
//! What the model leaves out: reads of holes and unwritten extents, which
//! iomap answers by zeroing the buffer with a user copy instead of a pin
//! (`iomap_dio_hole_iter()`) — the same faults and bytes for the buffers
//! a scenario can name; and the page-cache side of a direct write, which
//! the kernel writes back and invalidates before writing the disk
//! (`kiocb_invalidate_pages()`): the model keeps the written bytes in its
//! page cache, so file contents agree but a mapping of the written range
//! keeps its page-cache folios where the kernel would fault in new ones.

use crate::events::EventKind;
use crate::gup::GupFlags;
use crate::kernel::Kernel;
use crate::shmem::InodeKind;
use crate::types::*;

/// The alignment O_DIRECT asks of file positions and lengths on this
/// machine's disk: the logical block size of /dev/vda.
pub const DIO_ALIGN: u64 = 512;

impl Kernel {
    /// pread (`write` false: file → buffer) or pwrite (`write` true:
    /// buffer → file) of `len` bytes at `file_off` through an O_DIRECT
    /// descriptor, with the buffer at `addr` in `pid`'s memory. Returns
    /// the bytes moved.
    pub fn direct_io(&mut self, pid: Pid, fd: Fd, file_off: u64, addr: u64, len: u64, write: bool) -> SysResult<u64> {
        let ino = self.inode_of_fd(pid, fd)?;
        match self.inodes[&ino].kind {
            InodeKind::Shmem | InodeKind::Hugetlbfs => Err(Errno::EINVAL.into()),
            InodeKind::DiskFile => self.iomap_dio_rw(pid, ino, file_off, addr, len, write),
        }
    }

    /// `iomap_dio_rw()` on a disk file, as described in the module
    /// documentation.
    fn iomap_dio_rw(&mut self, pid: Pid, ino: crate::folio::InodeId, file_off: u64, addr: u64, len: u64, write: bool) -> SysResult<u64> {
        if !(file_off | len).is_multiple_of(DIO_ALIGN) {
            return Err(Errno::EINVAL.into());
        }
        let len = if write { len } else { len.min(self.inodes[&ino].size.saturating_sub(file_off)) };
        if len == 0 {
            return Ok(0);
        }
        let first = page_align_down(addr);
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        let nr = (end.next_multiple_of(PAGE_SIZE) - first) / PAGE_SIZE;
        let flags = GupFlags { write: !write, ..GupFlags::PIN };
        let (pages, err) = self.gup_pages_upto(pid, first, nr, flags, true)?;
        self.event(pid, EventKind::Gup, "iov_iter_extract_user_pages", Some(first), || {
            format!("O_DIRECT {}: {} of {nr} page(s) pinned, {flags}", if write { "write" } else { "read" }, pages.len())
        });
        if pages.is_empty() {
            return Err(err.unwrap_or(Errno::EFAULT.into()));
        }
        // The I/O covers what was pinned, in whole blocks.
        let off = addr - first;
        let n = (pages.len() as u64 * PAGE_SIZE - off).min(len) / DIO_ALIGN * DIO_ALIGN;
        if n == 0 {
            self.release_pages(&pages, true);
            return Err(err.unwrap_or(Errno::EFAULT.into()));
        }
        let r = if write {
            let data = self.read_pages(&pages, off, n);
            self.file_write(ino, file_off, &data).map(|()| n)
        } else {
            let data = self.file_read(ino, file_off, n);
            self.write_pages(&pages, off, &data);
            Ok(data.len())
        };
        self.release_pages(&pages, true);
        r
    }
}
