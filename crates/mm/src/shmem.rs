//! Inodes and their page caches: shmem/tmpfs, memfd, hugetlbfs and a file
//! on a disk filesystem (mm/shmem.c, mm/filemap.c, fs/hugetlbfs).
//!
//! Page-cache folio sizes are the kernel's as configured on this machine:
//! - shmem (tmpfs, memfd, shared anonymous): 4 KiB folios only. Huge shmem
//!   folios need `shmem_enabled` (or a per-size `shmem_enabled`, or a
//!   `huge=` mount) other than `never`, which is what this machine has; the
//!   model leaves shmem THP out.
//! - a regular file on ext4: large folios (ext4_set_inode_mapping_order(),
//!   orders 0..=9 with 4 KiB blocks). A buffered write creates folios sized
//!   by the write ([`Kernel::write_folio_order`]); page faults and reads
//!   create 4 KiB folios (mmap read-around without VM_HUGEPAGE allocates
//!   order 0); fallocate only allocates blocks, no page cache.
//! - hugetlbfs: one huge folio per huge index.
//!
//! The cache maps a folio's first index to it; each cached folio holds one
//! reference for the cache. A disk file also has the bytes "on disk"
//! ([`Inode::disk`]): a folio the cache creates reads them in, and they are
//! written when folios leave the cache under an O_DIRECT write (see
//! crates/mm/src/direct_io.rs) and by the O_DIRECT write itself. Left out:
//! writeback at other times (the cache holds the newest bytes, so nothing
//! a scenario observes depends on when), readahead of read(2), LRU, shmem
//! THP, allocation failure of a large folio (the kernel then tries smaller
//! orders), truncation of mapped pages (truncate only drops pages no
//! longer mapped).

use crate::contents::Contents;
use crate::folio::{FolioId, FolioKind, InodeId, MmId};
use crate::kernel::{File, Kernel};
use crate::memory::VmFault;
use crate::types::*;
use std::collections::BTreeMap;

/// The largest page-cache folio of an ext4 regular file with 4 KiB blocks
/// and pages: EXT4_MAX_PAGECACHE_ORDER = min(MAX_PAGECACHE_ORDER (the PMD
/// order on x86-64), 11 + block bits - page bits).
const EXT4_MAX_FOLIO_ORDER: u32 = 9;
/// `mapping_max_folio_size()` of such a file: the chunk generic_perform_write()
/// writes at most at a time.
const MAX_FOLIO_BYTES: u64 = PAGE_SIZE << EXT4_MAX_FOLIO_ORDER;

/// The filesystem an inode lives on, which decides the GUP rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InodeKind {
    /// shmem/tmpfs, memfd, anonymous MAP_SHARED.
    Shmem,
    /// hugetlbfs or memfd MFD_HUGETLB.
    Hugetlbfs,
    /// A regular file on a disk filesystem with dirty tracking (ext4).
    DiskFile,
}

impl InodeKind {
    /// `vma_needs_dirty_tracking()` for shared writable mappings: the
    /// filesystem has `page_mkwrite` / writeback (disk filesystems).
    pub fn needs_dirty_tracking(self) -> bool {
        self == InodeKind::DiskFile
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Inode {
    pub kind: InodeKind,
    pub hugetlb: Option<HugeSize>,
    pub size: u64,
    /// Page cache: index (in base pages; for hugetlb, the huge page's first
    /// base-page index) → folio.
    pub cache: BTreeMap<u64, FolioId>,
    /// A disk file's bytes on disk, from offset 0 (zeros past its end): what
    /// a new page-cache folio reads in. Only bytes no cached folio holds
    /// are read from here; empty for shmem and hugetlbfs.
    pub disk: Contents,
    /// Open file descriptions referring to the inode.
    pub(crate) opens: u32,
    /// hugetlb: reserved huge indices of this inode (region map).
    pub(crate) resv: std::collections::BTreeSet<u64>,
    /// S_PRIVATE: the kernel-internal file of a SysV shm segment
    /// (`hugetlb_file_setup()` / `shmem_kernel_file_setup()`).
    pub(crate) s_private: bool,
}

impl Kernel {
    pub(crate) fn create_inode(&mut self, kind: InodeKind, hugetlb: Option<HugeSize>, size: u64) -> InodeId {
        let id = InodeId(self.fresh_id());
        self.inodes.insert(
            id,
            Inode {
                kind,
                hugetlb,
                size,
                cache: BTreeMap::new(),
                disk: Contents::default(),
                opens: 0,
                resv: Default::default(),
                s_private: false,
            },
        );
        id
    }

    /// memfd_create(2) (MFD_HUGETLB with a size) or open(O_TMPFILE) on tmpfs
    /// or a disk filesystem: a new empty file, opened read/write.
    pub fn create_file(&mut self, pid: Pid, kind: InodeKind, hugetlb: Option<HugeSize>) -> SysResult<Fd> {
        self.task(pid)?;
        if let Some(h) = hugetlb {
            if kind != InodeKind::Hugetlbfs || self.hstates.get(h).is_none() {
                return Err(Errno::EINVAL.into());
            }
        }
        let ino = self.create_inode(kind, hugetlb, 0);
        Ok(self.install_fd(pid, File::Inode(ino)))
    }

    pub(crate) fn install_fd(&mut self, pid: Pid, file: File) -> Fd {
        let t = self.tasks.get_mut(&pid).expect("caller checked the task");
        let fd = (3..).find(|n| !t.fds.contains_key(n)).expect("fd space is unbounded");
        t.fds.insert(fd, file);
        self.file_get(file);
        Fd(fd)
    }

    pub(crate) fn inode_of_fd(&self, pid: Pid, fd: Fd) -> SysResult<InodeId> {
        match self.task(pid)?.fds.get(&fd.0) {
            Some(File::Inode(i)) => Ok(*i),
            Some(_) => Err(Errno::EINVAL.into()),
            None => Err(Errno::EBADF.into()),
        }
    }

    /// ftruncate(2). hugetlbfs sizes must be multiples of the huge page size
    /// (EINVAL otherwise). Shrinking drops cached pages past the new end that
    /// are no longer mapped and releases their hugetlb reservations.
    pub fn ftruncate(&mut self, pid: Pid, fd: Fd, size: u64) -> SysResult<()> {
        let ino = self.inode_of_fd(pid, fd)?;
        let inode = &self.inodes[&ino];
        if let Some(h) = inode.hugetlb {
            if !size.is_multiple_of(h.bytes()) {
                return Err(Errno::EINVAL.into());
            }
        }
        let old = inode.size;
        self.inodes.get_mut(&ino).expect("present").size = size;
        if size < old {
            self.truncate_cache(ino, size);
        }
        Ok(())
    }

    /// `iput()` → `evict()` when nothing refers to the inode any more (no
    /// open file, no mapping): all our files are unlinked (memfd, O_TMPFILE,
    /// the shmem or hugetlbfs object of a MAP_SHARED|MAP_ANONYMOUS mapping),
    /// so the last reference frees the page cache and, for hugetlbfs, gives
    /// the pages and the reservations back to the pool
    /// (`shmem_evict_inode()`, `hugetlbfs_evict_inode()` →
    /// `remove_inode_hugepages()`). Pages still held elsewhere (a pipe)
    /// live on without the file. The emptied inode stays in the map so that
    /// such pages can still name it.
    pub(crate) fn iput(&mut self, ino: InodeId) {
        if self.inodes[&ino].opens > 0 || self.mms.values().any(|m| m.vmas.values().any(|v| v.inode() == Some(ino))) {
            return;
        }
        self.truncate_cache(ino, 0);
    }

    fn truncate_cache(&mut self, ino: InodeId, size: u64) {
        let inode = self.inodes.get_mut(&ino).expect("present");
        if inode.disk.len() > size {
            inode.disk = inode.disk.slice(0, size);
        }
        let first = size.div_ceil(PAGE_SIZE);
        let gone: Vec<(u64, FolioId)> = self.inodes[&ino].cache.range(first..).map(|(k, v)| (*k, *v)).collect();
        for (idx, f) in gone {
            if self.folios.get(f).mapcount == 0 {
                self.inodes.get_mut(&ino).expect("present").cache.remove(&idx);
                self.folio_put(f);
            }
        }
        crate::hugetlb::hugetlb_unreserve_pages(self, ino, first);
    }

    /// fallocate(2) mode 0 on `[off, off + len)`: shmem allocates a 4 KiB
    /// folio per page (`shmem_fallocate()`), hugetlbfs a huge folio per huge
    /// page (`hugetlbfs_fallocate()`); ext4 allocates blocks and leaves the
    /// page cache alone (`ext4_fallocate()`). The size grows to
    /// `off + len` (no FALLOC_FL_KEEP_SIZE).
    pub fn fallocate(&mut self, pid: Pid, fd: Fd, off: u64, len: u64) -> SysResult<()> {
        let ino = self.inode_of_fd(pid, fd)?;
        let inode = &self.inodes[&ino];
        if len == 0 {
            return Err(Errno::EINVAL.into());
        }
        let end = off + len;
        if inode.kind != InodeKind::DiskFile {
            let step = inode.hugetlb.map_or(PAGE_SIZE, |h| h.bytes());
            let mut a = align_down(off, step);
            while a < end {
                self.pagecache_get_or_alloc(ino, a / PAGE_SIZE, true, 0).map_err(pagecache_errno)?;
                a += step;
            }
        }
        let inode = self.inodes.get_mut(&ino).expect("present");
        inode.size = inode.size.max(end);
        Ok(())
    }

    /// fallocate(2) with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE on
    /// `[off, off + len)` (fs/open.c: `vfs_fallocate()`, which refuses an
    /// empty range with EINVAL, then the filesystem's own: see
    /// [`Kernel::punch_hole`]). The size stays as it is.
    pub fn fallocate_punch_hole(&mut self, pid: Pid, fd: Fd, off: u64, len: u64) -> SysResult<()> {
        let ino = self.inode_of_fd(pid, fd)?;
        self.punch_hole(pid, ino, off, len)
    }

    /// A hole punched into a file's page cache, by fallocate(2) or by
    /// MADV_REMOVE.
    ///
    /// hugetlbfs (fs/hugetlbfs/inode.c: `hugetlbfs_punch_hole()`): only the
    /// whole huge pages inside the range are removed; the pieces of huge
    /// pages at either end are zeroed in place
    /// (`hugetlbfs_zero_partial_page()`). Before removal every VMA of the
    /// file is unmapped over the hole (`hugetlb_vmdelete_list()`) — the
    /// private ones too, *with* their COW copies: an anonymous page a
    /// private mapping wrote is freed along with the file's pages, the
    /// behaviour hugetlbfs has always had and hugetlb-madvise.c checks.
    /// Then `remove_inode_hugepages()` drops each cached page; its
    /// reservation entry goes with it, which changes no pool counter (the
    /// entry was consumed when the page was allocated), and reservations
    /// of indices with no page stay.
    ///
    /// shmem (mm/shmem.c: `shmem_fallocate()` → `unmap_mapping_range()`
    /// without `even_cows`, then `shmem_truncate_range()`) and, in the same
    /// terms, a disk file (`truncate_pagecache_range()`): shared mappings
    /// lose the hole's pages, private mappings lose only the page-cache
    /// pages they map, their anonymous copies stay; whole folios inside the
    /// hole leave the cache, partly covered ones are zeroed over the hole.
    /// Left out: seals (EPERM), i_size and s_maxbytes limits (EFBIG), the
    /// blocks of a disk file, and the split a kernel attempts of a large
    /// disk-file folio the hole only partly covers (the model zeroes the
    /// covered bytes and keeps the folio whole).
    pub(crate) fn punch_hole(&mut self, pid: Pid, ino: InodeId, off: u64, len: u64) -> SysResult<()> {
        if len == 0 || off.checked_add(len).is_none_or(|e| e > i64::MAX as u64) {
            return Err(Errno::EINVAL.into());
        }
        let end = off + len;
        let unit = self.inodes[&ino].hugetlb.map_or(PAGE_SIZE, |h| h.bytes());
        let hugetlb = self.inodes[&ino].hugetlb.is_some();
        // The folios the hole covers whole, and the partly covered ones.
        let cached: Vec<(u64, FolioId)> = self.inodes[&ino].cache.iter().map(|(k, v)| (*k, *v)).collect();
        let mut whole = Vec::new();
        for (head, f) in cached {
            let (fs, fe) = (head * PAGE_SIZE, head * PAGE_SIZE + self.folios.get(f).size());
            if fe <= off || fs >= end {
                continue;
            }
            if off <= fs && fe <= end {
                whole.push((head, f));
            } else {
                let (zs, ze) = (off.max(fs), end.min(fe));
                self.folios.get_mut(f).data.overwrite(zs - fs, &Contents::zeroed(ze - zs));
            }
        }
        let disk = &mut self.inodes.get_mut(&ino).expect("present").disk;
        if off < disk.len() {
            let n = end.min(disk.len()) - off;
            disk.overwrite(off, &Contents::zeroed(n));
        }
        // The pages (huge pages) wholly inside the range.
        let (hole_start, hole_end) = (off.next_multiple_of(unit), align_down(end, unit));
        if hole_start < hole_end {
            self.unmap_mapping_range(pid, ino, hole_start, hole_end, hugetlb);
        }
        for (head, f) in whole {
            self.inodes.get_mut(&ino).expect("present").cache.remove(&head);
            self.folio_put(f);
        }
        Ok(())
    }

    /// `unmap_mapping_range()` (mm/memory.c) over the file bytes
    /// `[start, end)` in every mm: with `even_cows` (hugetlbfs's
    /// `hugetlb_vmdelete_list()`, truncation) every entry of the range
    /// goes, otherwise a private mapping keeps its anonymous copies and
    /// only page-cache pages are unmapped.
    pub(crate) fn unmap_mapping_range(&mut self, pid: Pid, ino: InodeId, start: u64, end: u64, even_cows: bool) {
        let mut ranges: Vec<(MmId, u64, u64)> = Vec::new();
        for (id, m) in &self.mms {
            for v in m.vmas.values().filter(|v| v.inode() == Some(ino)) {
                let vfile = v.pgoff * PAGE_SIZE;
                let (s, e) = (start.max(vfile), end.min(vfile + v.len()));
                if s < e {
                    ranges.push((*id, v.start + (s - vfile), v.start + (e - vfile)));
                }
            }
        }
        for (mm, s, e) in ranges {
            if even_cows || self.mm(mm).vma(s).is_some_and(|v| v.shared) {
                self.zap_page_range(pid, mm, s, e);
                continue;
            }
            let file_leaves: Vec<(u64, u64)> = self
                .mm(mm)
                .pt
                .leaves_in(s, e)
                .filter(|l| self.folio_of_leaf(l).is_some_and(|f| !self.folio_is_anon(f)))
                .map(|l| (l.addr, l.addr + l.level.size()))
                .collect();
            for (a, b) in file_leaves {
                self.zap_page_range(pid, mm, a, b);
            }
        }
    }

    /// The order of the folio a buffered write of `bytes` at base-page
    /// index `idx` creates when nothing is cached there
    /// (generic_perform_write() → write_begin_get_folio() →
    /// __filemap_get_folio() with FGP_CREAT): shmem 0 (see the module doc);
    /// ext4 the order of the write's length (`filemap_get_order()`, at most
    /// 9), lowered to the alignment of `idx`, and lowered further while the
    /// range would overlap a cached folio (`filemap_add_folio()` says
    /// EEXIST and the kernel tries the next smaller order).
    fn write_folio_order(&self, ino: InodeId, idx: u64, bytes: u64) -> u8 {
        if self.inodes[&ino].kind != InodeKind::DiskFile {
            return 0;
        }
        let mut order = bytes.ilog2().saturating_sub(PAGE_SIZE.ilog2()).min(EXT4_MAX_FOLIO_ORDER);
        if idx & ((1 << order) - 1) != 0 {
            order = idx.trailing_zeros();
        }
        while order > 0 && !self.pagecache_range_empty(ino, idx, 1 << order) {
            order -= 1;
        }
        order as u8
    }

    /// pwrite(2) into the page cache (extends the file).
    pub fn pwrite(&mut self, pid: Pid, fd: Fd, off: u64, data: &Contents) -> SysResult<u64> {
        rw_verify_area(off, data.len())?;
        let ino = self.inode_of_fd(pid, fd)?;
        self.file_write(ino, off, data)?;
        Ok(data.len())
    }

    pub(crate) fn file_write(&mut self, ino: InodeId, off: u64, data: &Contents) -> SysResult<()> {
        if self.inodes[&ino].hugetlb.is_some() {
            // hugetlbfs has no write(2).
            return Err(Errno::EINVAL.into());
        }
        let end = off + data.len();
        let mut pos = off;
        while pos < end {
            let idx = pos / PAGE_SIZE;
            // generic_perform_write() asks for at most the rest of the
            // current largest-folio-sized chunk.
            let bytes = (MAX_FOLIO_BYTES - pos % MAX_FOLIO_BYTES).min(end - pos);
            let order = self.write_folio_order(ino, idx, bytes);
            let (f, page) = self.pagecache_get_or_alloc(ino, idx, true, order).map_err(pagecache_errno)?;
            let folio = self.folios.get_mut(f);
            let in_folio = page * PAGE_SIZE + pos % PAGE_SIZE;
            let n = (folio.size() - in_folio).min(end - pos);
            folio.data.overwrite(in_folio, &data.slice(pos - off, n));
            folio.dirty = true;
            pos += n;
        }
        let inode = self.inodes.get_mut(&ino).expect("present");
        inode.size = inode.size.max(end);
        Ok(())
    }

    fn pagecache_range_empty(&self, ino: InodeId, idx: u64, nr: u64) -> bool {
        self.inodes[&ino].cache.range(..idx + nr).next_back().is_none_or(|(&h, &f)| h + self.folios.get(f).nr_pages() <= idx)
    }

    /// pread(2): bytes past EOF are not returned.
    pub fn pread(&mut self, pid: Pid, fd: Fd, off: u64, len: u64) -> SysResult<Contents> {
        rw_verify_area(off, len)?;
        let ino = self.inode_of_fd(pid, fd)?;
        Ok(self.file_read(ino, off, len))
    }

    pub(crate) fn file_read(&self, ino: InodeId, off: u64, len: u64) -> Contents {
        let inode = &self.inodes[&ino];
        let end = (off + len).min(inode.size);
        let mut out = Contents::default();
        let mut pos = off;
        while pos < end {
            match self.pagecache_lookup(ino, pos / PAGE_SIZE) {
                Some((f, page)) => {
                    let folio = self.folios.get(f);
                    let in_folio = page * PAGE_SIZE + pos % PAGE_SIZE;
                    let n = (folio.size() - in_folio).min(end - pos);
                    out.append(&folio.data.slice(in_folio, n));
                    pos += n;
                }
                None => {
                    let n = (PAGE_SIZE - pos % PAGE_SIZE).min(end - pos);
                    out.append(&self.disk_read(ino, pos, n));
                    pos += n;
                }
            }
        }
        out
    }

    /// `[off, off + len)` of a file's bytes on disk ([`Inode::disk`]).
    pub(crate) fn disk_read(&self, ino: InodeId, off: u64, len: u64) -> Contents {
        let disk = &self.inodes[&ino].disk;
        if off >= disk.len() {
            return Contents::zeroed(len);
        }
        let n = len.min(disk.len() - off);
        let mut out = disk.slice(off, n);
        if n < len {
            out.append(&Contents::zeroed(len - n));
        }
        out
    }

    /// Writes `data` at `off` to a file's bytes on disk, growing them with
    /// zeros as needed.
    pub(crate) fn disk_write(&mut self, ino: InodeId, off: u64, data: &Contents) {
        let disk = &mut self.inodes.get_mut(&ino).expect("present").disk;
        let end = off + data.len();
        if disk.len() < end {
            disk.append(&Contents::zeroed(end - disk.len()));
        }
        disk.overwrite(off, data);
    }

    /// The cached folio and page for base-page index `idx`.
    pub(crate) fn pagecache_lookup(&self, ino: InodeId, idx: u64) -> Option<(FolioId, u64)> {
        let (&head, &f) = self.inodes[&ino].cache.range(..=idx).next_back()?;
        (idx < head + self.folios.get(f).nr_pages()).then_some((f, idx - head))
    }

    /// Finds or creates the page-cache folio for `idx` (`filemap_fault()`,
    /// `shmem_get_folio()`); hugetlb folios come from the pool, others are
    /// of `order` (aligned) when created.
    pub(crate) fn pagecache_get_or_alloc(&mut self, ino: InodeId, idx: u64, extend: bool, order: u8) -> Result<(FolioId, u64), VmFault> {
        if let Some(hit) = self.pagecache_lookup(ino, idx) {
            return Ok(hit);
        }
        let inode = &self.inodes[&ino];
        if !extend && idx * PAGE_SIZE >= inode.size {
            return Err(VmFault::Sigbus);
        }
        let hugetlb = inode.hugetlb;
        let per = hugetlb.map_or(1 << order, |h| h.bytes() / PAGE_SIZE);
        let head = idx - idx % per;
        let folio = match hugetlb {
            Some(h) => crate::hugetlb::alloc_hugetlb_folio_for_inode(self, ino, h, head)?,
            // The OOM killer runs for faults only (the caller's
            // `oom_reserve()`); a write or fallocate without the memory
            // fails.
            None if self.free_ram_pages() < per => return Err(VmFault::Oom),
            None => self.folios.alloc(order, FolioKind::File { inode: ino, index: head }, None),
        };
        // A disk file's folio reads its bytes in (`filemap_read_folio()`);
        // the other kinds start zeroed.
        if hugetlb.is_none() && head * PAGE_SIZE < self.inodes[&ino].disk.len() {
            let data = self.disk_read(ino, head * PAGE_SIZE, per * PAGE_SIZE);
            self.folios.get_mut(folio).data = data;
        }
        // The allocation reference becomes the page cache's.
        self.inodes.get_mut(&ino).expect("present").cache.insert(head, folio);
        Ok((folio, idx - head))
    }

    /// The fault side: a page inside the file's size.
    pub(crate) fn filemap_fault(&mut self, ino: InodeId, idx: u64) -> Result<(FolioId, u64), VmFault> {
        self.pagecache_get_or_alloc(ino, idx, false, 0)
    }

    pub(crate) fn file_get(&mut self, file: File) {
        match file {
            File::Inode(i) => self.inodes.get_mut(&i).expect("fd refers to a live inode").opens += 1,
            File::PipeRead(p) | File::PipeWrite(p) => self.pipe_file_get(p, matches!(file, File::PipeWrite(_))),
            File::Ring(r) => self.rings.get_mut(&r).expect("fd refers to a live ring").opens += 1,
        }
    }

    /// Drops one file reference (close, exit).
    pub(crate) fn file_put(&mut self, file: File) {
        match file {
            File::Inode(i) => {
                let inode = self.inodes.get_mut(&i).expect("fd refers to a live inode");
                inode.opens -= 1;
                self.iput(i);
            }
            File::PipeRead(p) | File::PipeWrite(p) => self.pipe_file_put(p, matches!(file, File::PipeWrite(_))),
            File::Ring(r) => self.ring_file_put(r),
        }
    }

    /// close(2).
    pub fn close(&mut self, pid: Pid, fd: Fd) -> SysResult<()> {
        self.task(pid)?;
        let file = self.tasks.get_mut(&pid).expect("checked").fds.remove(&fd.0).ok_or(Errno::EBADF)?;
        self.file_put(file);
        Ok(())
    }

    /// Reads from a file descriptor: a pipe or a file (from offset 0).
    pub fn read_fd(&mut self, pid: Pid, fd: Fd, len: u64) -> SysResult<Contents> {
        match self.task(pid)?.fds.get(&fd.0).copied() {
            Some(File::PipeRead(p)) => self.pipe_read(pid, p, len),
            Some(File::Inode(i)) => Ok(self.file_read(i, 0, len)),
            Some(_) => Err(Errno::EINVAL.into()),
            None => Err(Errno::EBADF.into()),
        }
    }
}

/// What a write or fallocate sees when the page cache cannot grow: ENOMEM
/// without RAM, ENOSPC when a hugetlbfs pool is empty.
fn pagecache_errno(e: VmFault) -> SysError {
    match e {
        VmFault::Oom => Errno::ENOMEM.into(),
        _ => Errno::ENOSPC.into(),
    }
}

/// `ksys_pread64()`/`ksys_pwrite64()` and `rw_verify_area()`
/// (fs/read_write.c) for a regular file: a position that is negative as a
/// `loff_t`, a count that is negative as a `ssize_t`, or an end past
/// `LLONG_MAX` is EINVAL, before any byte moves (io_uring's reads and
/// writes pass the same check). The kernel looks the descriptor up between
/// the first check and the others; the model checks first (a scenario
/// names only open descriptors). Left out: files with unsigned offsets
/// (`/dev/mem`), which the model has none of.
pub(crate) fn rw_verify_area(pos: u64, count: u64) -> SysResult<()> {
    let max = i64::MAX as u64;
    if pos > max || count > max || pos + count > max {
        return Err(Errno::EINVAL.into());
    }
    Ok(())
}
