//! Pins a program takes without gup_test: process_vm_readv/writev
//! (mm/process_vm_access.c) and O_DIRECT I/O (fs/iomap/direct-io.c), with
//! the outcomes 6.18 gives (the same scenarios run live in
//! crates/live/scenarios/process-vm-*.cow and odirect-*.cow).
mod common;
use common::*;
use mm::*;

/// A parent with one written page `a` and a child sharing it since fork.
fn forked(s: &mut Sys) -> (Pid, Pid, u64) {
    s.thp_disable();
    let p = s.spawn();
    let a = s.anon(p, 2 * K4);
    s.fill(p, a, K4, 0x11).unwrap();
    let c = s.fork(p);
    assert_eq!(s.pfn(p, a), s.pfn(c, a));
    (p, c, a)
}

#[test]
fn process_vm_readv_unshares_the_targets_shared_page() {
    let mut s = Sys::new();
    let (p, c, a) = forked(&mut s);
    let h = s.spawn();
    let b = s.anon(h, 2 * K4);
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a, K4, false)), Ok(K4));
    assert_eq!(s.read(h, b, K4).unwrap(), Contents::filled(K4, 0x11));
    // The R/O FOLL_PIN unshared the target's page: C has its own copy.
    assert_ne!(s.pfn(p, a), s.pfn(c, a));
    assert!(s.info(c, a).anon_exclusive);
    // An untouched page is read as the zero page, which the read maps.
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b + K4, a + K4, K4, false)), Ok(K4));
    assert!(s.k.pagemap(c, a + K4).unwrap().zero_page);
}

#[test]
fn process_vm_writev_breaks_cow_in_the_target_only() {
    let mut s = Sys::new();
    let (p, c, a) = forked(&mut s);
    let h = s.spawn();
    let b = s.anon(h, K4);
    s.fill(h, b, K4, 0x22).unwrap();
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a, K4, true)), Ok(K4));
    assert_eq!(s.read(c, a, K4).unwrap(), Contents::filled(K4, 0x22));
    assert_eq!(s.read(p, a, K4).unwrap(), Contents::filled(K4, 0x11));
}

/// The kernel's copy into the caller's buffer is fixed up, not signalled:
/// a buffer that ends in a read-only page gives a short count, one that is
/// read-only from the start EFAULT, and the caller lives on.
#[test]
fn a_fault_on_the_callers_buffer_is_a_short_count_or_efault_never_a_signal() {
    let mut s = Sys::new();
    let (_, c, a) = forked(&mut s);
    let h = s.spawn();
    let b = s.anon(h, 2 * K4);
    s.step(|k| k.mprotect(h, b + K4, K4, Prot::READ)).unwrap();
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a, 2 * K4, false)), Ok(K4));
    s.step(|k| k.mprotect(h, b, K4, Prot::READ)).unwrap();
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a, K4, false)), Err(Errno::EFAULT.into()));
    assert_eq!(s.k.task_state(h), Some(TaskState::Running));
}

/// A hole in the remote range ends the copy there; nothing pinnable at all
/// is EFAULT; an exited target is ESRCH; an empty read is 0.
#[test]
fn remote_holes_exits_and_empty_reads() {
    let mut s = Sys::new();
    let (_, c, a) = forked(&mut s);
    let h = s.spawn();
    let b = s.anon(h, 2 * K4);
    s.step(|k| k.munmap(c, a + K4, K4)).unwrap();
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a, 2 * K4, false)), Ok(K4));
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a + K4, K4, false)), Err(Errno::EFAULT.into()));
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a, 0, false)), Ok(0));
    s.step(|k| k.exit(c)).unwrap();
    assert_eq!(s.step(|k| k.process_vm_rw(h, c, b, a, K4, false)), Err(Errno::ESRCH.into()));
}

fn tmpfile(s: &mut Sys, p: Pid, size: u64) -> Fd {
    let f = s.step(|k| k.create_file(p, InodeKind::DiskFile, None)).unwrap();
    s.step(|k| k.ftruncate(p, f, size)).unwrap();
    f
}

#[test]
fn odirect_pwrite_unshares_the_writers_page_and_pread_breaks_cow() {
    let mut s = Sys::new();
    let (p, c, a) = forked(&mut s);
    s.fill(p, a + K4, K4, 0x33).unwrap();
    let c2 = s.fork(p);
    let f = tmpfile(&mut s, p, 2 * K4);
    assert_eq!(s.step(|k| k.direct_io(p, f, 0, a, K4, true)), Ok(K4));
    // R/O FOLL_PIN of a page shared since fork: the writer got a copy.
    assert_ne!(s.pfn(p, a), s.pfn(c, a));
    assert_eq!(s.step(|k| k.pread(p, f, 0, K4)).unwrap(), Contents::filled(K4, 0x11));
    // A read into memory pins FOLL_WRITE: COW broken in the reader only.
    s.step(|k| k.pwrite(p, f, K4, &Contents::filled(K4, 0x44))).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, f, K4, a + K4, K4, false)), Ok(K4));
    assert_ne!(s.pfn(p, a + K4), s.pfn(c2, a + K4));
    assert_eq!(s.read(p, a + K4, K4).unwrap(), Contents::filled(K4, 0x44));
    assert_eq!(s.read(c2, a + K4, K4).unwrap(), Contents::filled(K4, 0x33));
}

#[test]
fn odirect_alignment_and_end_of_file() {
    let mut s = Sys::new();
    s.thp_disable();
    let p = s.spawn();
    let a = s.anon(p, 2 * K4);
    let f = tmpfile(&mut s, p, 2 * K4);
    // Positions and lengths in 512-byte blocks; the buffer address is free.
    assert_eq!(s.step(|k| k.direct_io(p, f, 100, a, 512, false)), Err(Errno::EINVAL.into()));
    assert_eq!(s.step(|k| k.direct_io(p, f, 0, a, 1000, true)), Err(Errno::EINVAL.into()));
    assert_eq!(s.step(|k| k.direct_io(p, f, 0, a + 100, 512, false)), Ok(512));
    // Reads stop at the end of the file.
    assert_eq!(s.step(|k| k.direct_io(p, f, 2 * K4, a, K4, false)), Ok(0));
    assert_eq!(s.step(|k| k.direct_io(p, f, K4, a, 2 * K4, false)), Ok(K4));
    // A buffer that is not mapped at all.
    s.step(|k| k.munmap(p, a, 2 * K4)).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, f, 0, a, K4, true)), Err(Errno::EFAULT.into()));
}

/// A memfd, shmem or hugetlbfs, does not take O_DIRECT (no
/// FMODE_CAN_ODIRECT: memfd_create() does not open its file through
/// `shmem_file_open()`).
#[test]
fn odirect_on_a_memfd_is_einval() {
    let mut s = Sys::new();
    let (p, _, a) = forked(&mut s);
    let m = s.step(|k| k.create_file(p, InodeKind::Shmem, None)).unwrap();
    s.step(|k| k.ftruncate(p, m, K4)).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, m, 0, a, K4, true)), Err(Errno::EINVAL.into()));
    s.hugetlb_pool(HugeSize::Size2M, 1);
    let hf = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(HugeSize::Size2M))).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, hf, 0, a, K4, false)), Err(Errno::EINVAL.into()));
}

/// An O_DIRECT write takes every page-cache folio that overlaps its range
/// out of the cache and out of every mapping of the file, whole (mm/filemap.c
/// `kiocb_invalidate_pages()`); an anonymous copy in a private mapping stays,
/// and a folio a pin holds lives on, detached from the file. Live:
/// crates/live/scenarios/odirect-pwrite-invalidates-page-cache.cow.
#[test]
fn odirect_pwrite_takes_the_range_out_of_the_page_cache() {
    let mut s = Sys::new();
    s.thp_disable();
    let p = s.spawn();
    let f = tmpfile(&mut s, p, 3 * K4);
    // One 8K folio (a buffered write of 8K), then a 4K one.
    s.step(|k| k.pwrite(p, f, 0, &Contents::filled(2 * K4, 0x11))).unwrap();
    s.step(|k| k.pwrite(p, f, 2 * K4, &Contents::filled(K4, 0x33))).unwrap();
    let sh = s.mmap(p, MmapRequest { shared: true, fd: Some(f), ..MmapRequest::anon(3 * K4) });
    let pv = s.mmap(p, MmapRequest { fd: Some(f), ..MmapRequest::anon(3 * K4) });
    s.read(p, sh, 3 * K4).unwrap();
    s.read(p, pv, K4).unwrap();
    s.fill(p, pv + K4, K4, 0x77).unwrap();
    assert_eq!(s.pfn(p, pv), s.pfn(p, sh));
    let pinned = s.pfn(p, sh);
    let h = s.pin(p, sh, 1, GupFlags::PIN, false).unwrap();
    let (kept, kept_pv) = (s.pfn(p, sh + 2 * K4), s.pfn(p, pv + K4));

    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0x22).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, f, K4, a, K4, true)), Ok(K4));
    for addr in [sh, sh + K4, pv] {
        assert!(!s.k.pagemap(p, addr).unwrap().present, "{addr:#x} still mapped");
    }
    assert_eq!(s.pfn(p, sh + 2 * K4), kept);
    assert_eq!(s.pfn(p, pv + K4), kept_pv);
    // The next accesses read the disk into a new folio.
    assert_eq!(s.read(p, sh, K4).unwrap(), Contents::filled(K4, 0x11));
    assert_eq!(s.read(p, sh + K4, K4).unwrap(), Contents::filled(K4, 0x22));
    assert_ne!(s.pfn(p, sh), pinned);
    assert_eq!(s.read(p, pv + K4, K4).unwrap(), Contents::filled(K4, 0x77));
    assert_eq!(s.step(|k| k.pread(p, f, K4, K4)).unwrap(), Contents::filled(K4, 0x22));
    s.step(|k| k.unpin(p, h)).unwrap();
    // A buffer that maps the range it writes: the pin faults the page back
    // in, the write goes to disk, and the second invalidation drops it.
    assert_eq!(s.step(|k| k.direct_io(p, f, 2 * K4, sh + 2 * K4, K4, true)), Ok(K4));
    assert!(!s.k.pagemap(p, sh + 2 * K4).unwrap().present);
    assert_eq!(s.read(p, sh + 2 * K4, K4).unwrap(), Contents::filled(K4, 0x33));
}

/// ext4 does not ask for IOMAP_DIO_PARTIAL: a buffer pinned in part fails
/// the call with EFAULT after the blocks before the failing page were moved;
/// a read covers its whole buffer, with zeros past the end of the file.
/// Live: crates/live/scenarios/fuzz-odirect-buffer-pinned-in-part-efault.cow.
#[test]
fn odirect_buffer_pinned_in_part_is_efault_after_the_part() {
    let mut s = Sys::new();
    s.thp_disable();
    let p = s.spawn();
    let f = tmpfile(&mut s, p, 4 * K4);
    s.step(|k| k.pwrite(p, f, 0, &Contents::filled(4 * K4, 0x66))).unwrap();
    let a = s.anon(p, 2 * K4);
    s.fill(p, a, 2 * K4, 0x55).unwrap();
    s.step(|k| k.munmap(p, a + K4, K4)).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, f, 0, a, 2 * K4, false)), Err(Errno::EFAULT.into()));
    assert_eq!(s.read(p, a, K4).unwrap(), Contents::filled(K4, 0x66));
    s.fill(p, a, K4, 0x11).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, f, K4, a, 2 * K4, true)), Err(Errno::EFAULT.into()));
    assert_eq!(s.step(|k| k.pread(p, f, K4, 2 * K4)).unwrap(), Contents::concat(&[Contents::filled(K4, 0x11), Contents::filled(K4, 0x66)]));
    // Past the end of the file: zeros into the buffer, the count stops.
    let b = s.anon(p, 2 * K4);
    s.fill(p, b, 2 * K4, 0x55).unwrap();
    assert_eq!(s.step(|k| k.direct_io(p, f, 3 * K4, b, 2 * K4, false)), Ok(K4));
    assert_eq!(s.read(p, b + K4, K4).unwrap(), Contents::zeroed(K4));
}
