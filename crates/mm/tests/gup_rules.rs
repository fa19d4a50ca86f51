//! GUP's own rules as 6.18 has them: FOLL_FORCE through read-only private
//! mappings (mm/gup.c: check_vma_flags(), can_follow_write_pte()), the
//! flags GUP-fast takes, x86 access permissions and protection keys, the
//! argument checks of the GUP and io_uring entry points, SIGPIPE from a
//! pipe without readers, and the mmap lock between a half-done fork and
//! GUP-fast's slow-path fallback.

mod common;
use common::*;
use mm::gup_fast::{GupFastState, GupFastStep};
use mm::pgtable::Entry;
use mm::*;

const FORCE_WRITE: GupFlags = GupFlags { write: true, longterm: false, pin: true, force: true, remote: false };

/// Whether the entry mapping `a` in `p` allows writes without a fault.
fn writable(s: &Sys, p: Pid, a: u64) -> bool {
    let mm = s.k.task_mm(p).unwrap();
    matches!(s.k.mm(mm).pt.lookup(a).map(|l| l.entry), Some(Entry::Present(e)) if e.write)
}

fn ro_anon(s: &mut Sys, p: Pid, len: u64) -> u64 {
    s.mmap(p, MmapRequest { prot: Prot::READ, ..MmapRequest::anon(len) })
}

#[test]
fn force_write_through_ro_private_mapping_reuses_an_exclusive_page() {
    for fast in [false, true] {
        let mut s = Sys::new();
        let p = s.spawn();
        let a = s.anon(p, K4);
        s.fill(p, a, K4, 1).unwrap();
        let pfn = s.pfn(p, a);
        s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
        let without = GupFlags { force: false, ..FORCE_WRITE };
        assert_eq!(s.pin(p, a, 1, without, fast), Err(Errno::EFAULT.into()), "no VM_WRITE, no FOLL_FORCE");
        let h = s.pin(p, a, 1, FORCE_WRITE, fast).expect("FOLL_FORCE writes through a R/O private mapping");
        assert_eq!(s.pfn(p, a), pfn, "the exclusive page is kept");
        assert!(s.info(p, a).anon_exclusive);
        assert!(!writable(&s, p, a), "the entry stays read-only (no VM_WRITE)");
        assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(1));
        assert_eq!(s.copied(), 0);
    }
}

#[test]
fn force_write_breaks_cow_of_a_page_shared_with_a_child() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 7).unwrap();
    let c = s.fork(p);
    s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
    let old = s.pfn(c, a);
    let h = s.pin(p, a, 1, FORCE_WRITE, false).unwrap();
    assert_ne!(s.pfn(p, a), old, "the parent got its own copy");
    assert_eq!(s.pfn(c, a), old, "the child keeps the old page");
    assert!(s.info(p, a).anon_exclusive && !writable(&s, p, a));
    let pinned = s.k.gup_pages_of(h).unwrap().get(0).unwrap().0;
    assert_eq!(Some(s.k.folios.get(pinned).pfn), s.pfn(p, a), "the pin holds the parent's new page");
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(7));
    assert_eq!(s.copied(), 1);
}

#[test]
fn force_write_into_an_untouched_ro_mapping_gets_a_new_anon_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = ro_anon(&mut s, p, K4);
    s.pin(p, a, 1, FORCE_WRITE, true).unwrap();
    let i = s.info(p, a);
    assert!(i.anon && i.anon_exclusive && !s.k.pagemap(p, a).unwrap().zero_page);
    // After a read fault mapped the zero page, the forced write copies it.
    let b = ro_anon(&mut s, p, K4);
    assert!(s.read(p, b, K4).unwrap().is_fill(0));
    assert!(s.k.pagemap(p, b).unwrap().zero_page);
    s.pin(p, b, 1, FORCE_WRITE, false).unwrap();
    assert!(!s.k.pagemap(p, b).unwrap().zero_page && s.info(p, b).anon_exclusive);
}

#[test]
fn force_write_waits_for_soft_dirty_tracking_then_succeeds() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 2).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
    s.step(|k| k.clear_soft_dirty(p)).unwrap();
    // pte_needs_soft_dirty_wp(): the first look refuses, the write fault
    // marks the entry soft-dirty, the second look takes the page.
    s.pin(p, a, 1, FORCE_WRITE, false).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().soft_dirty);
}

#[test]
fn force_write_through_a_ro_private_file_mapping_copies_and_spares_the_file() {
    let mut s = Sys::new();
    let p = s.spawn();
    let f = s.step(|k| k.create_file(p, InodeKind::Shmem, None)).unwrap();
    s.step(|k| k.fallocate(p, f, 0, K4)).unwrap();
    s.step(|k| k.write_fd(p, f, &Contents::filled(K4, 0x5a))).unwrap();
    let a = s.mmap(p, MmapRequest { fd: Some(f), prot: Prot::READ, ..MmapRequest::anon(K4) });
    let h = s.pin(p, a, 1, FORCE_WRITE, true).unwrap();
    assert!(s.info(p, a).anon, "a private anon copy of the file page");
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0x5a));
    assert!(s.step(|k| k.pread(p, f, 0, K4)).unwrap().is_fill(0x5a));
}

#[test]
fn force_write_is_refused_in_shared_mappings() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.mmap(p, MmapRequest { shared: true, prot: Prot::READ, ..MmapRequest::anon(K4) });
    for fast in [false, true] {
        assert_eq!(s.pin(p, a, 1, FORCE_WRITE, fast), Err(Errno::EFAULT.into()));
    }
}

#[test]
fn gup_fast_takes_foll_force() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 3).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::NONE)).unwrap();
    let force_read = GupFlags { force: true, ..GupFlags::GET };
    // The walk bails on the PROT_NONE entry; the slow path, forced, takes it.
    let h = s.pin(p, a, 1, force_read, true).expect("FOLL_FORCE is a flag GUP-fast accepts");
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(3));
    assert_eq!(s.pin(p, a, 1, GupFlags::GET, true), Err(Errno::EFAULT.into()));
}

#[test]
fn longterm_without_pin_is_einval() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    let before = s.info(p, a).refcount;
    for fast in [false, true] {
        assert_eq!(s.pin(p, a, 1, GupFlags::GET.with_longterm(), fast), Err(Errno::EINVAL.into()));
    }
    assert_eq!(s.info(p, a).refcount, before);
}

#[test]
fn write_only_mapping_is_readable_by_loads_and_by_gup_fast_once_present() {
    let mut s = Sys::new();
    let p = s.spawn();
    let w = Prot::WRITE;
    let a = s.mmap(p, MmapRequest { prot: w, ..MmapRequest::anon(K4) });
    let (r, wr) = s.step(|k| k.pipe(p)).unwrap();
    // Not present: GUP-fast bails and the slow path has no VM_READ.
    assert_eq!(s.step(|k| k.vmsplice(p, wr, a, K4)), Err(Errno::EFAULT.into()));
    assert!(s.read(p, a, K4).unwrap().is_fill(0), "x86 reads a PROT_WRITE page");
    assert_eq!(s.step(|k| k.vmsplice(p, wr, a, K4)), Err(Errno::EFAULT.into()), "the zero page is special");
    s.fill(p, a, K4, 0x11).unwrap();
    assert_eq!(s.step(|k| k.vmsplice(p, wr, a, K4)), Ok(K4), "GUP-fast takes the present PTE");
    assert!(s.step(|k| k.read_fd(p, r, K4)).unwrap().is_fill(0x11));
    assert_eq!(s.pin(p, a, 1, GupFlags::GET, false), Err(Errno::EFAULT.into()), "slow GUP without FOLL_FORCE");
    assert!(s.pin(p, a, 1, GupFlags { force: true, ..GupFlags::GET }, false).is_ok());
    // MADV_POPULATE_READ needs VM_READ, MADV_POPULATE_WRITE VM_WRITE.
    let b = s.mmap(p, MmapRequest { prot: w, ..MmapRequest::anon(K4) });
    assert_eq!(s.step(|k| k.madvise(p, b, K4, Advice::PopulateRead)), Err(Errno::EINVAL.into()));
    s.step(|k| k.madvise(p, b, K4, Advice::PopulateWrite)).unwrap();
    assert!(s.k.pagemap(p, b).unwrap().present);
}

#[test]
fn exec_only_mapping_is_closed_to_data_access_under_protection_keys() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0x22).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::EXEC)).unwrap();
    let (_, wr) = s.step(|k| k.pipe(p)).unwrap();
    assert_eq!(s.step(|k| k.vmsplice(p, wr, a, K4)), Err(Errno::EFAULT.into()));
    let force_read = GupFlags { force: true, ..GupFlags::GET };
    assert_eq!(s.pin(p, a, 1, force_read, false), Err(Errno::EFAULT.into()), "the key denies even FOLL_FORCE");
    let b = s.mmap(p, MmapRequest { prot: Prot::EXEC, populate: true, ..MmapRequest::anon(K4) });
    assert!(!s.k.pagemap(p, b).unwrap().present, "MAP_POPULATE is refused by the key");
    let c = s.fork(p);
    assert_eq!(s.read(c, a, K4), Err(SysError::Signal(Signal::SIGSEGV)), "the child inherits key and PKRU");
    assert_eq!(s.read(p, a, K4), Err(SysError::Signal(Signal::SIGSEGV)));
}

#[test]
fn exec_only_mapping_is_readable_without_protection_keys() {
    let mut s = Sys::new().set("pkeys", "off");
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0x22).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::EXEC)).unwrap();
    assert!(s.read(p, a, K4).unwrap().is_fill(0x22));
    let (_, wr) = s.step(|k| k.pipe(p)).unwrap();
    assert_eq!(s.step(|k| k.vmsplice(p, wr, a, K4)), Ok(K4), "GUP-fast takes the present PTE");
    assert_eq!(s.pin(p, a, 1, GupFlags::GET, false), Err(Errno::EFAULT.into()), "check_vma_flags(): no VM_READ");
    assert_eq!(s.step(|k| k.write_mem(p, a, &Contents::filled(1, 0))), Err(SysError::Signal(Signal::SIGSEGV)));
}

#[test]
fn io_uring_buffer_registration_errnos_and_sparse_slots() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, 2 * K4);
    s.fill(p, a, 2 * K4, 0x55).unwrap();
    let ring = s.step(|k| k.io_uring_setup(p)).unwrap();
    let reg = |s: &mut Sys, iovs: &[(u64, u64)]| s.step(|k| k.io_uring_register_buffers(p, ring, iovs));
    assert_eq!(reg(&mut s, &[]), Err(Errno::EINVAL.into()), "empty list");
    assert_eq!(reg(&mut s, &[(a, 0)]), Err(Errno::EFAULT.into()), "length 0");
    assert_eq!(reg(&mut s, &[(a, K4), (a, (1 << 30) + 1)]), Err(Errno::EFAULT.into()), "above 1 GiB");
    assert_eq!(reg(&mut s, &[(0, K4)]), Err(Errno::EFAULT.into()), "NULL with a length");
    assert_eq!(s.info(p, a).pincount, 0, "a failed registration keeps no pin");
    assert_eq!(s.info(p, a).refcount, 1);
    // A range whose second page is not mapped: a partial pin is EFAULT.
    s.step(|k| k.munmap(p, a + K4, K4)).unwrap();
    assert_eq!(reg(&mut s, &[(a, 2 * K4)]), Err(Errno::EFAULT.into()));
    assert_eq!(s.info(p, a).refcount, 1);
    reg(&mut s, &[(0, 0), (a, K4)]).expect("a sparse slot, then a buffer");
    let f = s.step(|k| k.create_file(p, InodeKind::Shmem, None)).unwrap();
    s.step(|k| k.fallocate(p, f, 0, K4)).unwrap();
    let wf = |s: &mut Sys, index| s.step(|k| k.io_uring_write_fixed(p, ring, index, f, 0, a, K4));
    assert_eq!(wf(&mut s, 0), Err(Errno::EFAULT.into()), "the sparse slot has no buffer");
    assert_eq!(wf(&mut s, 1), Ok(K4));
    assert!(s.step(|k| k.pread(p, f, 0, K4)).unwrap().is_fill(0x55));
    assert_eq!(reg(&mut s, &[(0, 0)]), Err(Errno::EBUSY.into()));
}

#[test]
fn pipe_without_readers_sends_sigpipe() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    let (r, w) = s.step(|k| k.pipe(p)).unwrap();
    let c = s.fork(p);
    s.step(|k| k.close(c, r)).unwrap();
    assert_eq!(s.step(|k| k.vmsplice(c, w, a, K4)), Ok(K4), "the parent's read end still counts");
    s.step(|k| k.close(p, r)).unwrap();
    assert_eq!(s.step(|k| k.vmsplice(c, w, a, 0)), Ok(0), "an empty vmsplice does not look at the pipe");
    assert_eq!(s.step(|k| k.vmsplice(c, w, a, K4)), Err(SysError::Signal(Signal::SIGPIPE)));
    assert_eq!(s.k.task_state(c), Some(TaskState::Killed(Signal::SIGPIPE)));
    assert_eq!(s.step(|k| k.write_fd(p, w, &Contents::filled(K4, 2))), Err(SysError::Signal(Signal::SIGPIPE)));
    assert_eq!(s.k.task_state(p), Some(TaskState::Killed(Signal::SIGPIPE)));
}

/// pipe_read(): an empty pipe blocks (EAGAIN in the model) while a writer
/// is left anywhere, and is end of file once every write end is closed.
#[test]
fn empty_pipe_without_writers_reads_end_of_file() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0x33).unwrap();
    let (r, w) = s.step(|k| k.pipe(p)).unwrap();
    assert_eq!(s.step(|k| k.vmsplice(p, w, a, K4)), Ok(K4));
    let c = s.fork(p);
    s.step(|k| k.close(p, w)).unwrap();
    assert!(s.step(|k| k.read_fd(c, r, K4)).unwrap().is_fill(0x33));
    assert_eq!(s.step(|k| k.read_fd(p, r, K4)), Err(Errno::EAGAIN.into()), "the child still has a write end");
    s.step(|k| k.close(c, w)).unwrap();
    assert_eq!(s.step(|k| k.read_fd(p, r, K4)).map(|d| d.len()), Ok(0), "no writer left: end of file");
    assert_eq!(s.step(|k| k.read_fd(c, r, K4)).map(|d| d.len()), Ok(0));
}

/// A GUP-fast call that needs its slow path while a fork holds the mmap
/// lock: the fallback step is refused until the fork is over.
#[test]
fn gup_fast_fallback_waits_for_a_half_done_fork() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    let b = s.anon(p, K4); // never touched: the lockless walk bails on it
    let mm = s.k.task_mm(p).unwrap();
    let mut f = s.k.fork_begin(p).unwrap();
    assert!(s.k.mmap_write_locked(mm));
    let mut g = s.k.gup_fast_begin(p, mm, b, 1, GupFlags::GET.with_write());
    while g.state != GupFastState::Slow {
        assert_eq!(s.k.gup_fast_step(&mut g), GupFastStep::Ran);
    }
    for _ in 0..3 {
        let before = (s.k.clone(), g.clone());
        assert_eq!(s.k.gup_fast_step(&mut g), GupFastStep::WaitingForMmapLock);
        assert_eq!((s.k.clone(), g.clone()), before, "a refused step changes nothing");
        // Steps of the fork may run meanwhile.
        s.k.fork_step(&mut f);
    }
    // A slow GUP run to completion, or a second fork, would wait forever.
    assert_eq!(s.k.gup(p, b, 1, GupFlags::GET, false), Err(SysError::Livelock));
    assert_eq!(s.k.fork_begin(p).err(), Some(SysError::Livelock));
    while s.k.fork_step(&mut f) {}
    assert!(!s.k.mmap_write_locked(mm));
    assert_eq!(s.k.gup_fast_step(&mut g), GupFastStep::Done);
    let h = s.step(|k| k.gup_fast_into_handle(g)).unwrap();
    assert_eq!(s.k.gup_pages_of(h).unwrap().len(), 1);
    s.step(|k| k.check_invariants()).unwrap();
}

#[test]
fn force_write_through_ro_thp_and_hugetlb() {
    // A PMD-mapped THP, exclusive: reused whole, the PMD stays read-only.
    let mut s = Sys::new();
    s.thp_enable_pmd();
    let p = s.spawn();
    let a = s.thp_area(p, M2);
    s.fill(p, a, M2, 4).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().thp);
    s.step(|k| k.mprotect(p, a, M2, Prot::READ)).unwrap();
    let h = s.pin(p, a + K4, 1, FORCE_WRITE, false).unwrap();
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(4));
    assert!(s.info(p, a + K4).anon_exclusive && !writable(&s, p, a + K4));
    // A 2 MiB hugetlb page shared with a child: the forced write copies it.
    let mut s = Sys::new();
    s.hugetlb_pool(HugeSize::Size2M, 2);
    let p = s.spawn();
    let a = s.huge(p, M2, HugeSize::Size2M).unwrap();
    s.fill(p, a, M2, 5).unwrap();
    let c = s.fork(p);
    s.step(|k| k.mprotect(p, a, M2, Prot::READ)).unwrap();
    let old = s.pfn(c, a);
    let h = s.pin(p, a, 1, FORCE_WRITE, true).unwrap();
    assert_ne!(s.pfn(p, a), old);
    assert_eq!(s.pfn(c, a), old);
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(5));
    assert!(s.info(p, a).anon_exclusive && !writable(&s, p, a));
}
