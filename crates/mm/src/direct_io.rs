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
//! 100-byte offset works on this machine), and not in the model either.
//!
//! A read that starts at or past the end of the file returns 0 and touches
//! nothing (`__iomap_dio_rw()`); any other read covers the whole buffer:
//! past the end of the file ext4 maps a hole, whose bytes iomap copies to
//! the buffer as zeros (`iomap_dio_hole_iter()`), and only the count
//! returned stops at the end of the file (`iomap_dio_complete()`). ext4 does
//! not ask for IOMAP_DIO_PARTIAL, so a buffer that cannot be pinned whole
//! fails the call: the blocks before the page that failed are still read
//! or written, and the call returns GUP's error (EFAULT for a hole).

//! Other files refuse O_DIRECT: `fcntl(F_SETFL, O_DIRECT)` is EINVAL
//! without FMODE_CAN_ODIRECT (fs/fcntl.c, `setfl()`). A memfd (shmem or
//! hugetlbfs) never gets it: only `shmem_file_open()`, the open(2) path of
//! a tmpfs file, sets it, and memfd_create() makes its file with
//! `alloc_file_pseudo()`, which does not call it; hugetlbfs has no
//! `direct_IO` at all. The model's memfds are its only shmem and hugetlbfs
//! files, so both are EINVAL.
//!
//! A direct write goes to the disk, not through the page cache
//! (`__iomap_dio_rw()`): before anything is pinned, the page cache of the
//! range is written back and invalidated (mm/filemap.c
//! `kiocb_invalidate_pages()` → `filemap_invalidate_pages()` →
//! mm/truncate.c `invalidate_inode_pages2_range()`), and after the I/O it
//! is invalidated once more (`kiocb_invalidate_post_direct_write()`), for
//! pages read in meanwhile — by pinning a buffer that maps the same file.
//! Invalidation unmaps every folio that overlaps the range from every
//! mapping of the file (`unmap_mapping_pages()` without `even_cows`: the
//! anonymous copies of private mappings stay) and takes it out of the
//! cache, whole, even when a pin or a pipe still holds it (those keep the
//! folio, detached from the file). The next access reads the new bytes
//! into a new folio. A direct read writes the range back and reads the
//! disk, which is the same bytes as the cache.
//!
//! What the model leaves out: reads of holes and unwritten extents, which
//! iomap answers by zeroing the buffer with a user copy instead of a pin
//! (`iomap_dio_hole_iter()`) — the same faults and bytes for the buffers
//! a scenario can name; writeback's write-protection of shared mappings
//! (`folio_mkclean()`), which only costs a later write a fault; and the
//! fallback to a buffered write when invalidation fails (a folio dirtied
//! again between the two steps, which a scenario's steps cannot do).

use crate::contents::Contents;
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
        crate::shmem::rw_verify_area(file_off, len)?;
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
        let size = self.inodes[&ino].size;
        if len == 0 || (!write && file_off >= size) {
            return Ok(0);
        }
        let first = page_align_down(addr);
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        if write {
            self.filemap_write_and_wait_range(ino, file_off, len);
            self.invalidate_inode_pages2_range(pid, ino, file_off, len);
        }
        let nr = (end.next_multiple_of(PAGE_SIZE) - first) / PAGE_SIZE;
        let flags = GupFlags { write: !write, ..GupFlags::PIN };
        let (pages, err) = self.gup_pages_upto(pid, first, nr, flags, true)?;
        self.event(pid, EventKind::Gup, "iov_iter_extract_user_pages", Some(first), || {
            format!("O_DIRECT {}: {} of {nr} page(s) pinned, {flags}", if write { "write" } else { "read" }, pages.len())
        });
        // The I/O covers what was pinned, in whole blocks; a buffer pinned
        // in part fails the call after that part is done.
        let off = addr - first;
        let n = (pages.len() * PAGE_SIZE).saturating_sub(off).min(len) / DIO_ALIGN * DIO_ALIGN;
        if n > 0 {
            if write {
                let data = self.read_pages(&pages, off, n);
                self.disk_write(ino, file_off, &data);
            } else {
                let mut data = self.file_read(ino, file_off, n);
                data.append(&Contents::zeroed(n - data.len()));
                self.write_pages(&pages, off, &data);
            }
        }
        self.release_pages(&pages, true);
        if n < len {
            return Err(err.unwrap_or(Errno::EFAULT.into()));
        }
        if write {
            let inode = self.inodes.get_mut(&ino).expect("present");
            inode.size = inode.size.max(file_off + len);
            self.invalidate_inode_pages2_range(pid, ino, file_off, len);
            Ok(len)
        } else {
            Ok(len.min(size - file_off))
        }
    }

    /// `filemap_write_and_wait_range()` (mm/filemap.c) over file bytes
    /// `[off, off + len)`: every cached folio that overlaps the range is
    /// written to disk whole (up to the file's size) and is clean after.
    fn filemap_write_and_wait_range(&mut self, ino: crate::folio::InodeId, off: u64, len: u64) {
        let size = self.inodes[&ino].size;
        for (head, f) in self.cached_folios_over(ino, off, len) {
            let start = head * PAGE_SIZE;
            let n = self.folios.get(f).size().min(size.saturating_sub(start));
            let data = self.folios.get(f).data.slice(0, n);
            self.disk_write(ino, start, &data);
            self.folios.get_mut(f).dirty = false;
        }
    }

    /// `invalidate_inode_pages2_range()` (mm/truncate.c) over file bytes
    /// `[off, off + len)`: every clean cached folio that overlaps the range
    /// is unmapped from every mapping of the file (`unmap_mapping_pages()`
    /// and `folio_unmap_invalidate()`, neither touching the anonymous
    /// copies of private mappings) and leaves the cache, whatever else
    /// holds it. A dirty folio stays (the kernel's -EBUSY).
    fn invalidate_inode_pages2_range(&mut self, pid: Pid, ino: crate::folio::InodeId, off: u64, len: u64) {
        for (head, f) in self.cached_folios_over(ino, off, len) {
            if self.folios.get(f).dirty {
                continue;
            }
            let start = head * PAGE_SIZE;
            let size = self.folios.get(f).size();
            self.unmap_mapping_range(pid, ino, start, start + size, false);
            self.inodes.get_mut(&ino).expect("present").cache.remove(&head);
            self.folio_put(f);
        }
    }

    /// The cached folios of `ino` that overlap file bytes `[off, off + len)`,
    /// with their first indices.
    fn cached_folios_over(&self, ino: crate::folio::InodeId, off: u64, len: u64) -> Vec<(u64, crate::folio::FolioId)> {
        let (first, end) = (off / PAGE_SIZE, (off + len).div_ceil(PAGE_SIZE));
        let cache = &self.inodes[&ino].cache;
        // A large folio that starts before the range may reach into it.
        let before = cache.range(..first).next_back().filter(|(&h, &f)| h + self.folios.get(f).nr_pages() > first);
        before.into_iter().chain(cache.range(first..end)).map(|(&h, &f)| (h, f)).collect()
    }
}
