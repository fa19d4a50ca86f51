//! File-backed memory and the long-term pin rules (§2.6, §8 S24–S27), and
//! GUP-fast racing fork (S34) driven step by step.

mod common;
use common::*;
use mm::fork::ForkState;
use mm::gup_fast::{GupFastState, GupFastStep};
use mm::*;

fn file(s: &mut Sys, p: Pid, kind: InodeKind, len: u64) -> Fd {
    let f = s.step(|k| k.create_file(p, kind, None)).unwrap();
    s.step(|k| k.fallocate(p, f, 0, len)).unwrap();
    f
}

fn map(s: &mut Sys, p: Pid, f: Fd, len: u64, shared: bool, prot: Prot) -> u64 {
    s.mmap(p, MmapRequest { shared, fd: Some(f), prot, ..MmapRequest::anon(len) })
}

#[test]
fn s24_rw_longterm_pin_of_shared_disk_file_is_refused() {
    let mut s = Sys::new();
    let p = s.spawn();
    let f = file(&mut s, p, InodeKind::DiskFile, K4);
    let a = map(&mut s, p, f, K4, true, Prot::RW);
    s.fill(p, a, K4, 0).unwrap();
    let ring = s.step(|k| k.io_uring_setup(p)).unwrap();
    assert_eq!(s.step(|k| k.io_uring_register_buffers(p, ring, &[(a, K4)])), Err(Errno::EFAULT.into()));
    assert_eq!(s.pin(p, a, 1, rw_longterm(), true), Err(Errno::EFAULT.into()));
    assert_eq!(s.pin(p, a, 1, rw_longterm(), false), Err(Errno::EFAULT.into()));
    let pfn = s.pfn(p, a);
    s.pin(p, a, 1, ro_longterm(), true).unwrap();
    assert_eq!(s.pfn(p, a), pfn, "R/O long-term pin of a shared mapping: no unshare");
    assert_eq!(s.copied(), 0);
}

#[test]
fn s25_shmem_and_hugetlbfs_accept_rw_longterm_pins() {
    let mut s = Sys::new();
    let p = s.spawn();
    let f = file(&mut s, p, InodeKind::Shmem, K4);
    let a = map(&mut s, p, f, K4, true, Prot::RW);
    let ring = s.step(|k| k.io_uring_setup(p)).unwrap();
    s.step(|k| k.io_uring_register_buffers(p, ring, &[(a, K4)])).unwrap();
    s.fill(p, a, K4, 0x5a).unwrap();
    let out = s.step(|k| k.create_file(p, InodeKind::DiskFile, None)).unwrap();
    s.step(|k| k.io_uring_write_fixed(p, ring, 0, out, 0, a, K4)).unwrap();
    assert!(s.step(|k| k.pread(p, out, 0, K4)).unwrap().is_fill(0x5a));
    // The other direction: io_uring writes, the process sees it.
    s.step(|k| k.pwrite(p, out, 0, &Contents::filled(K4, 0x6b))).unwrap();
    s.step(|k| k.io_uring_read_fixed(p, ring, 0, out, 0, a, K4)).unwrap();
    assert!(s.read(p, a, K4).unwrap().is_fill(0x6b));

    s.hugetlb_pool(HugeSize::Size2M, 1);
    let h = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(HugeSize::Size2M))).unwrap();
    s.step(|k| k.ftruncate(p, h, M2)).unwrap();
    let b = map(&mut s, p, h, M2, true, Prot::RW);
    s.pin(p, b, 512, rw_longterm(), true).unwrap();
}

#[test]
fn s26_private_file_ro_longterm_pin_unshares() {
    let mut s = Sys::new();
    let p = s.spawn();
    let f = file(&mut s, p, InodeKind::DiskFile, K4);
    s.step(|k| k.pwrite(p, f, 0, &Contents::filled(K4, 0x10))).unwrap();
    let a = map(&mut s, p, f, K4, false, Prot::RW);
    assert!(s.read(p, a, K4).unwrap().is_fill(0x10));
    assert!(!s.k.pagemap(p, a).unwrap().anon);
    let h = s.pin(p, a, 1, ro_longterm(), false).unwrap();
    let pm = s.k.pagemap(p, a).unwrap();
    assert!(pm.anon && !pm.writable, "a private anon copy, mapped read-only");
    assert_eq!(s.copied(), 1);
    s.fill(p, a, K4, 0x20).unwrap();
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0x20), "later process writes are seen through the pin");
    s.step(|k| k.pwrite(p, f, 0, &Contents::filled(K4, 0x30))).unwrap();
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0x20), "later file writes are not");
    // GUP-fast cannot know the VMA: it bails, the slow path decides.
    let b = map(&mut s, p, f, K4, false, Prot::RW);
    s.read(p, b, 1).unwrap();
    s.k.take_events();
    s.pin(p, b, 1, ro_longterm(), true).unwrap();
    assert!(s.k.events().iter().any(|e| e.kind == EventKind::Bail));
}

#[test]
fn s27_private_file_short_term_ro_pin_pins_the_cache_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let f = file(&mut s, p, InodeKind::Shmem, K4);
    let a = map(&mut s, p, f, K4, false, Prot::RW);
    s.read(p, a, 1).unwrap();
    let h = s.pin(p, a, 1, GupFlags::PIN, false).unwrap();
    assert_eq!(s.copied(), 0);
    assert!(!s.k.pagemap(p, a).unwrap().anon);
    s.fill(p, a, K4, 0x77).unwrap();
    assert_eq!(s.copied(), 1, "the process write COWs away from the pinned cache page");
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0));
}

#[test]
fn shared_anon_is_shmem_and_not_copied_at_fork() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.mmap(p, MmapRequest { shared: true, ..MmapRequest::anon(K4) });
    s.fill(p, a, K4, 1).unwrap();
    let c = s.fork(p);
    s.fill(c, a, K4, 2).unwrap();
    assert!(s.read(p, a, K4).unwrap().is_fill(2));
    assert_eq!(s.copied(), 0);
}

/// S34: the race write_protect_seq exists for. P has a writable exclusive
/// page; GUP-fast (FOLL_PIN|FOLL_WRITE) reads the PTE while fork has already
/// decided the page is not pinned but has not yet write-protected it.
fn race(seqcount: bool) -> (bool, bool, Result<(), InvariantViolation>) {
    let mut s = Sys::new().set("gup_fast_seqcount", if seqcount { "on" } else { "off" });
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    let mm = s.k.task_mm(p).unwrap();
    let mut g = s.k.gup_fast_begin(p, mm, a, 1, GupFlags::PIN.with_write());
    // Mid-race, GUP-fast's references live in the step machine, not yet in
    // the kernel's books: invariants are checked once both are done.
    let mut f = s.k.fork_begin(p).unwrap();
    // fork: VMA set-up, then the dup decision for the page (clears AE).
    while !matches!(f.state, ForkState::Install { .. }) {
        s.k.fork_step(&mut f);
    }
    // GUP-fast: sample, read the (still writable) PTE, grab, recheck.
    while !matches!(g.state, GupFastState::End) {
        s.k.gup_fast_step(&mut g);
    }
    // fork finishes: write-protects the parent's PTE, maps the child's.
    while s.k.fork_step(&mut f) {}
    while s.k.gup_fast_step(&mut g) == GupFastStep::Ran {}
    let c = f.result.unwrap().unwrap();
    let pinned = g.pages.get(0).unwrap().0;
    s.k.gup_fast_into_handle(g).unwrap();
    let invariants = s.k.check_invariants();
    let pinned_pfn = s.k.folios.get(pinned).pfn;
    let shared_with_child = s.pfn(c, a) == Some(pinned_pfn);
    let parent_maps_it = s.pfn(p, a) == Some(pinned_pfn) && s.info(p, a).anon_exclusive;
    (shared_with_child, parent_maps_it, invariants)
}

#[test]
fn s34_gup_fast_racing_fork() {
    assert_eq!(race(true), (false, true, Ok(())), "with write_protect_seq: the pin ends on P's own exclusive page");
    let (shared, _, inv) = race(false);
    assert!(shared, "without it: the pinned page is shared with the child");
    assert!(inv.unwrap_err().0.contains("not anon-exclusive"), "and check_invariants() catches the pinned, shared page");
}

/// The page-cache folios a buffered write creates at each base-page index
/// of `[0, pages)`: (first index, number of pages) per folio, as the live
/// kernel's kpageflags head/tail bits show them.
fn folios_of(s: &mut Sys, p: Pid, f: Fd, pages: u64) -> Vec<(u64, u64)> {
    let a = map(s, p, f, pages * K4, true, Prot::READ);
    let mut out: Vec<(u64, u64)> = Vec::new();
    for i in 0..pages {
        s.read(p, a + i * K4, 1).unwrap();
        let info = s.info(p, a + i * K4);
        let first = i - (s.pfn(p, a + i * K4).unwrap() - info.pfn);
        if out.last().is_none_or(|&(h, _)| h != first) {
            out.push((first, 1 << info.order));
        }
    }
    out
}

/// Measured on this machine (6.18, ext4 root, shmem_enabled=never): ext4
/// writes create folios sized by the write and aligned to their index;
/// shmem and faults create 4 KiB folios; ext4 fallocate creates none.
#[test]
fn page_cache_folio_sizes_follow_the_filesystem_and_the_write() {
    let mut s = Sys::new();
    let p = s.spawn();
    let write = |s: &mut Sys, kind: InodeKind, off: u64, len: u64| {
        let f = s.step(|k| k.create_file(p, kind, None)).unwrap();
        s.step(|k| k.pwrite(p, f, off, &Contents::filled(len, 1))).unwrap();
        f
    };
    // 3 MiB at 0: one order-9 folio, then the 1 MiB rest as one order-8.
    let f = write(&mut s, InodeKind::DiskFile, 0, 3 * M2 / 2);
    assert_eq!(folios_of(&mut s, p, f, 768), vec![(0, 512), (512, 256)]);
    // 2 MiB + 8 KiB at 4 KiB: page 0 is faulted (4 KiB), then folios grow
    // with the alignment of their index up to the 2 MiB boundary.
    let f = write(&mut s, InodeKind::DiskFile, K4, M2 + 2 * K4);
    let mut want = vec![(0, 1), (1, 1)];
    want.extend((1..9).map(|o| (1 << o, 1 << o)));
    want.extend([(512, 2), (514, 1)]);
    assert_eq!(folios_of(&mut s, p, f, 515), want);
    // 64 KiB at 8 KiB: the write's length caps the order too.
    let f = write(&mut s, InodeKind::DiskFile, 2 * K4, 16 * K4);
    assert_eq!(folios_of(&mut s, p, f, 18), vec![(0, 1), (1, 1), (2, 2), (4, 4), (8, 8), (16, 2)]);
    // A write into a range with cached pages takes the next smaller order
    // that fits (filemap_add_folio() → EEXIST).
    let f = write(&mut s, InodeKind::DiskFile, 4 * K4, K4);
    s.step(|k| k.pwrite(p, f, 0, &Contents::filled(8 * K4, 2))).unwrap();
    assert_eq!(folios_of(&mut s, p, f, 8), vec![(0, 4), (4, 1), (5, 1), (6, 2)]);
    // memfd/shmem: 4 KiB folios however large the write.
    let f = write(&mut s, InodeKind::Shmem, 0, M2);
    assert_eq!(folios_of(&mut s, p, f, 512), (0..512).map(|i| (i, 1)).collect::<Vec<_>>());
    let a = s.mmap(p, MmapRequest { shared: true, fd: Some(f), prot: Prot::READ, ..MmapRequest::anon(M2) });
    assert!(!s.k.pagemap(p, a).unwrap().thp);
    // fallocate: shmem caches 4 KiB folios, ext4 caches nothing; both
    // files then fault 4 KiB folios in and grow to exactly off + len.
    for kind in [InodeKind::Shmem, InodeKind::DiskFile] {
        let f = s.step(|k| k.create_file(p, kind, None)).unwrap();
        s.step(|k| k.fallocate(p, f, 0, M2 + 1)).unwrap();
        assert_eq!(s.step(|k| k.pread(p, f, 0, 2 * M2)).unwrap().len(), M2 + 1, "{kind:?}");
        assert_eq!(folios_of(&mut s, p, f, 4), vec![(0, 1), (1, 1), (2, 1), (3, 1)], "{kind:?}");
    }
}

/// hugetlbfs_file_mmap(): a writable mapping past EOF grows the file to
/// its end; without VM_WRITE it does not, and hugetlb_no_page() answers a
/// fault past EOF with SIGBUS (private mappings too).
#[test]
fn hugetlbfs_mmap_past_eof_grows_only_writable_mappings() {
    let mut s = Sys::new();
    s.hugetlb_pool(HugeSize::Size2M, 8);
    let p = s.spawn();
    let h = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(HugeSize::Size2M))).unwrap();
    // Read-only, private: no growth; the read faults past EOF.
    let a = map(&mut s, p, h, M2, false, Prot::READ);
    assert_eq!(s.read(p, a, 1), Err(SysError::Signal(Signal::SIGBUS)));
    let p = s.spawn();
    let h = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(HugeSize::Size2M))).unwrap();
    let b = map(&mut s, p, h, M2, true, Prot::READ);
    assert_eq!(s.read(p, b, 1), Err(SysError::Signal(Signal::SIGBUS)), "shared read-only: still empty");
    let p = s.spawn();
    let h = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(HugeSize::Size2M))).unwrap();
    // Writable shared and writable private: the file grows to 4 MiB.
    let c = map(&mut s, p, h, 2 * M2, true, Prot::RW);
    s.fill(p, c + M2, 1, 7).unwrap();
    let d = map(&mut s, p, h, 2 * M2, false, Prot::RW);
    assert!(s.read(p, d + M2, 1).unwrap().is_fill(7), "private read of the shared write");
    let q = s.spawn();
    let h2 = s.step(|k| k.create_file(q, InodeKind::Hugetlbfs, Some(HugeSize::Size2M))).unwrap();
    let e = map(&mut s, q, h2, M2, false, Prot::RW);
    assert!(s.read(q, e, 1).unwrap().is_fill(0), "a private writable mapping grew the file: no SIGBUS");
}

/// shmem's hole punch (`shmem_fallocate()`): whole pages leave the file and
/// the shared mapping, a private mapping keeps its anonymous copy, the
/// pieces at the ends are zeroed; MADV_REMOVE on the shared mapping is the
/// same punch.
#[test]
fn shmem_punch_hole_keeps_private_copies() {
    let mut s = Sys::new();
    let p = s.spawn();
    let f = s.step(|k| k.create_file(p, InodeKind::Shmem, None)).unwrap();
    s.step(|k| k.fallocate(p, f, 0, 4 * K4)).unwrap();
    let shared = s.mmap(p, MmapRequest { shared: true, fd: Some(f), ..MmapRequest::anon(4 * K4) });
    let private = s.mmap(p, MmapRequest { fd: Some(f), ..MmapRequest::anon(4 * K4) });
    s.fill(p, shared, 4 * K4, 7).unwrap();
    s.read(p, private, 1).unwrap();
    s.fill(p, private + K4, 1, 9).unwrap();
    s.step(|k| k.fallocate_punch_hole(p, f, 100, 2 * K4)).unwrap();
    assert!(s.read(p, shared, 100).unwrap().is_fill(7));
    assert!(s.read(p, shared + 100, K4 - 100).unwrap().is_fill(0), "the piece of page 0 is zeroed");
    assert!(s.read(p, shared + K4, K4).unwrap().is_fill(0), "page 1 is punched out");
    assert!(s.read(p, shared + 2 * K4, 100).unwrap().is_fill(0) && s.read(p, shared + 2 * K4 + 100, 1).unwrap().is_fill(7));
    assert_eq!(s.read(p, private + K4, 1).unwrap().single_byte(), Some(9), "the private copy stays");
    s.step(|k| k.madvise(p, shared + 3 * K4, K4, Advice::Remove)).unwrap();
    assert!(s.read(p, shared + 3 * K4, K4).unwrap().is_fill(0));
    assert_eq!(s.step(|k| k.madvise(p, private, K4, Advice::Remove)), Err(Errno::EACCES.into()));
}

/// vmf_anon_prepare() comes before the allocation in wp_page_copy(): a
/// write fault on a page-cache page of a private mapping that finds no
/// memory still leaves the VMA its anon_vma (what a later fork's
/// vma_needs_copy() reads). The faulting task is the OOM victim here; an
/// mm hold keeps its address space to look at.
#[test]
fn a_cow_fault_without_memory_leaves_the_vma_its_anon_vma() {
    let mut s = Sys::new();
    s.k.machine.ram = 64 * K4;
    let p = s.spawn();
    let q = s.spawn();
    let f = file(&mut s, p, InodeKind::Shmem, K4);
    let m = map(&mut s, p, f, K4, false, Prot::RW);
    s.read(p, m, K4).unwrap();
    let hold = s.step(|k| k.mmget(q, p)).unwrap();
    let free = s.k.free_ram_pages();
    let a = s.anon(p, free * K4);
    s.fill(p, a, free * K4, 1).unwrap();
    assert_eq!(s.k.free_ram_pages(), 0);
    let mm = s.k.task_mm(p).unwrap();
    assert!(s.k.mm(mm).vmas[&m].anon_vma.is_none(), "only a read so far");
    assert!(s.fill(p, m, K4, 2).is_err(), "no memory for the copy");
    assert_eq!(s.k.task_state(p), Some(TaskState::Killed(Signal::SIGKILL)), "the OOM killer chose the faulting task");
    assert!(s.k.mm(mm).vmas[&m].anon_vma.is_some(), "anon_vma prepared before the allocation");
    s.step(|k| k.mmput(q, hold)).unwrap();
}
