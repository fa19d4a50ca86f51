//! The spec's anonymous-memory scenarios (§8: S1–S11, S14, S28, S30–S36),
//! with the counters it gives after each step.

mod common;
use common::*;
use mm::*;

#[test]
fn s1_first_touch_read_then_write() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    assert!(s.read(p, a, K4).unwrap().is_fill(0));
    let pm = s.k.pagemap(p, a).unwrap();
    assert!(pm.present && pm.zero_page && !pm.writable);
    s.fill(p, a, K4, 0x11).unwrap();
    let i = s.info(p, a);
    assert_eq!((i.refcount, i.mapcount, i.anon_exclusive), (1, 1, true));
    assert!(s.k.pagemap(p, a).unwrap().writable);
    assert_eq!(s.copied(), 0, "zero-fill is not a copy");
}

#[test]
fn s2_basic_cow() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0xaa).unwrap();
    let c = s.fork(p);
    let i = s.info(p, a);
    assert_eq!((i.refcount, i.mapcount, i.anon_exclusive), (2, 2, false));
    assert!(!s.k.pagemap(p, a).unwrap().writable && !s.k.pagemap(c, a).unwrap().writable);
    let old = s.pfn(p, a);
    s.fill(c, a, K4, 0xcc).unwrap();
    let ic = s.info(c, a);
    assert_eq!((ic.refcount, ic.mapcount, ic.anon_exclusive), (1, 1, true));
    assert_ne!(s.pfn(c, a), old);
    assert_eq!(s.info(p, a).refcount, 1);
    s.fill(p, a, K4, 0xbb).unwrap();
    assert_eq!(s.pfn(p, a), old, "parent reuses its page");
    assert!(s.info(p, a).anon_exclusive);
    assert_eq!(s.copied(), 1);
    assert!(s.read(p, a, K4).unwrap().is_fill(0xbb));
    assert!(s.read(c, a, K4).unwrap().is_fill(0xcc));
}

#[test]
fn s3_child_exits_first() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    let c = s.fork(p);
    s.step(|k| k.exit(c)).unwrap();
    s.fill(p, a, K4, 2).unwrap();
    assert_eq!(s.copied(), 0);
}

#[test]
fn s4_rw_longterm_pin_then_fork() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0x00).unwrap();
    let h = s.pin(p, a, 1, rw_longterm(), false).unwrap();
    assert_eq!(s.info(p, a).refcount, 1025);
    let c = s.fork(p);
    assert_eq!(s.copied(), 1, "the child got its copy at fork");
    assert!(s.k.pagemap(p, a).unwrap().writable, "parent keeps its page writable");
    assert!(s.k.pagemap(c, a).unwrap().writable, "child's copy is writable");
    s.fill(p, a, K4, 0xff).unwrap();
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0xff));
    assert!(s.read(c, a, K4).unwrap().is_fill(0x00));
}

#[test]
fn s5_ro_pin_on_exclusive_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0).unwrap();
    let h = s.pin(p, a, 1, ro_longterm(), false).unwrap();
    assert_eq!(s.info(p, a).refcount, 1025);
    s.fill(p, a, K4, 0xff).unwrap();
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0xff));
    assert_eq!(s.copied(), 0);
}

fn shared_ro_pin(fast: bool, longterm: bool) {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0).unwrap();
    let c = s.fork(p);
    let flags = if longterm { ro_longterm() } else { GupFlags::PIN };
    let h = s.pin(p, a, 1, flags, fast).unwrap();
    assert_eq!(s.copied(), 1, "unshare copied at pin time");
    let i = s.info(p, a);
    assert_eq!((i.refcount, i.anon_exclusive), (1025, true));
    assert!(!s.k.pagemap(p, a).unwrap().writable, "unshare leaves the PTE read-only");
    s.fill(p, a, K4, 0xff).unwrap();
    assert_eq!(s.copied(), 1, "the write reuses the exclusive page");
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0xff));
    assert!(s.read(c, a, K4).unwrap().is_fill(0));
}

#[test]
fn s6_ro_pin_on_page_shared_with_live_child() {
    shared_ro_pin(false, true);
    shared_ro_pin(false, false);
}

#[test]
fn s7_same_with_gup_fast() {
    shared_ro_pin(true, true);
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0).unwrap();
    s.fork(p);
    s.k.take_events();
    s.pin(p, a, 1, ro_longterm(), true).unwrap();
    assert!(s.k.events().iter().any(|e| e.kind == EventKind::Bail && e.func == "gup_fast_pte_range"), "GUP-fast bails to the slow path");
}

#[test]
fn s8_ro_pin_on_previously_shared_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0).unwrap();
    let c = s.fork(p);
    s.step(|k| k.exit(c)).unwrap();
    let pfn = s.pfn(p, a);
    let h = s.pin(p, a, 1, ro_longterm(), false).unwrap();
    assert_eq!(s.copied(), 0);
    assert_eq!(s.pfn(p, a), pfn);
    assert!(s.info(p, a).anon_exclusive);
    assert!(!s.k.pagemap(p, a).unwrap().writable);
    s.fill(p, a, K4, 7).unwrap();
    assert_eq!(s.copied(), 0);
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(7));
}

#[test]
fn s9_ro_mapped_exclusive_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
    s.step(|k| k.clear_soft_dirty(p)).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::RW)).unwrap();
    assert!(!s.k.pagemap(p, a).unwrap().writable, "soft-dirty tracking keeps it read-only");
    let h = s.pin(p, a, 1, ro_longterm(), false).unwrap();
    s.fill(p, a, K4, 0xee).unwrap();
    assert_eq!(s.copied(), 0);
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0xee));
}

#[test]
fn s10_foll_get_on_shared_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    let c = s.fork(p);
    let h = s.pin(p, a, 1, GupFlags::GET, false).unwrap();
    assert_eq!(s.info(p, a).refcount, 3);
    s.fill(p, a, K4, 2).unwrap();
    assert_eq!(s.copied(), 1);
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(1), "the reference is now the child's page");
    assert!(s.read(c, a, K4).unwrap().is_fill(1));
}

/// CVE-2020-29374: the child vmsplices the shared page and unmaps it; the
/// parent's later write must not reach the pipe.
fn s11(policy_anon_reuse: &str) -> Contents {
    let mut s = Sys::new().set("anon_reuse", policy_anon_reuse);
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0x00).unwrap();
    let c = s.fork(p);
    let (r, w) = s.step(|k| k.pipe(c)).unwrap();
    assert_eq!(s.step(|k| k.vmsplice(c, w, a, K4)).unwrap(), K4);
    assert_eq!(s.info(c, a).refcount, 3, "two mappings + the pipe");
    s.step(|k| k.munmap(c, a, K4)).unwrap();
    assert_eq!((s.info(p, a).refcount, s.info(p, a).mapcount), (2, 1));
    s.fill(p, a, K4, 0xff).unwrap();
    s.step(|k| k.read_fd(c, r, K4)).unwrap()
}

#[test]
fn s11_vmsplice_child_unmap_no_leak_under_6_18() {
    assert!(s11("anon_exclusive").is_fill(0x00));
    assert!(s11("refcount").is_fill(0x00));
}

#[test]
fn s11_cve_2020_29374_leaks_under_mapcount_rule() {
    assert!(s11("mapcount").is_fill(0xff), "pre-5.8 reuse by mapcount leaks the parent's write");
}

#[test]
fn s14_vmsplice_before_fork_unmap_in_parent() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0).unwrap();
    let (r, w) = s.step(|k| k.pipe(p)).unwrap();
    s.step(|k| k.vmsplice(p, w, a, K4)).unwrap();
    assert!(s.info(p, a).anon_exclusive, "FOLL_GET is not a pin");
    let c = s.fork(p);
    s.step(|k| k.munmap(p, a, K4)).unwrap();
    s.fill(c, a, K4, 0xff).unwrap();
    assert_eq!(s.copied(), 1);
    assert!(s.step(|k| k.read_fd(p, r, K4)).unwrap().is_fill(0));
}

#[test]
fn s28_zero_page_pins() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.read(p, a, K4).unwrap();
    let zero_rc = s.info(p, a).refcount;
    let h = s.pin(p, a, 1, GupFlags::PIN, false).unwrap();
    assert_eq!(s.info(p, a).refcount, zero_rc, "pinning the zero page is a no-op");
    s.step(|k| k.unpin(p, h)).unwrap();
    let h = s.pin(p, a, 1, GupFlags::PIN, true).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().zero_page);
    s.step(|k| k.unpin(p, h)).unwrap();
    let _h = s.pin(p, a, 1, ro_longterm(), false).unwrap();
    let pm = s.k.pagemap(p, a).unwrap();
    assert!(!pm.zero_page && !pm.writable && pm.anon);
    let i = s.info(p, a);
    assert_eq!((i.refcount, i.anon_exclusive), (1025, true));
    assert_eq!(s.copied(), 0, "zero-fill, not a copy");
}

#[test]
fn s30_dontneed_on_pinned_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 5).unwrap();
    let h = s.pin(p, a, 1, rw_longterm(), false).unwrap();
    s.step(|k| k.madvise(p, a, K4, Advice::DontNeed)).unwrap();
    assert!(!s.k.pagemap(p, a).unwrap().present);
    let pinned = s.k.gup_pages_of(h).unwrap().get(0).unwrap().0;
    assert_eq!((s.k.folios.get(pinned).refcount, s.k.folios.get(pinned).mapcount), (1024, 0));
    assert!(s.read(p, a, K4).unwrap().is_fill(0));
    s.fill(p, a, K4, 6).unwrap();
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(5), "writes no longer reach the pinned page");
    s.step(|k| k.unpin(p, h)).unwrap();
    assert!(s.k.folios.get(pinned).freed);
}

#[test]
fn s31_dontfork() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    let _h = s.pin(p, a, 1, rw_longterm(), false).unwrap();
    s.step(|k| k.madvise(p, a, K4, Advice::DontFork)).unwrap();
    let c = s.fork(p);
    assert_eq!(s.read(c, a, K4), Err(SysError::Signal(Signal::SIGSEGV)));
    assert_eq!(s.k.task_state(c), Some(TaskState::Killed(Signal::SIGSEGV)));
    assert_eq!(s.copied(), 0);
}

#[test]
fn s32_wipeonfork() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0xaa).unwrap();
    s.step(|k| k.madvise(p, a, K4, Advice::WipeOnFork)).unwrap();
    let c = s.fork(p);
    assert!(s.read(c, a, K4).unwrap().is_fill(0));
    assert!(s.read(p, a, K4).unwrap().is_fill(0xaa));
    assert_eq!(s.copied(), 0);
}

#[test]
fn s33_mprotect_optimisation() {
    // Without fork: mprotect(RW) maps the exclusive page writable at once.
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 1).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::RW)).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().writable);
    // After fork the page is not exclusive: it stays read-only, and the
    // write copies (child alive) or reuses (child gone).
    for child_exits in [false, true] {
        let mut s = Sys::new();
        let p = s.spawn();
        let a = s.anon(p, K4);
        s.fill(p, a, K4, 1).unwrap();
        let c = s.fork(p);
        s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
        s.step(|k| k.mprotect(p, a, K4, Prot::RW)).unwrap();
        assert!(!s.k.pagemap(p, a).unwrap().writable);
        if child_exits {
            s.step(|k| k.exit(c)).unwrap();
        }
        s.fill(p, a, K4, 2).unwrap();
        assert_eq!(s.copied(), if child_exits { 0 } else { 1 });
    }
}

fn ring_file(s: &mut Sys, p: Pid) -> (Fd, Fd) {
    let ring = s.step(|k| k.io_uring_setup(p)).unwrap();
    let f = s.step(|k| k.create_file(p, InodeKind::DiskFile, None)).unwrap();
    (ring, f)
}

#[test]
fn s35_iouring_fixed_buffer_then_fork() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    let (ring, f) = ring_file(&mut s, p);
    s.step(|k| k.io_uring_register_buffers(p, ring, &[(a, K4)])).unwrap();
    assert!(s.info(p, a).anon_exclusive && s.k.pagemap(p, a).unwrap().writable, "registration write-faults");
    let c = s.fork(p);
    assert_eq!(s.copied(), 1, "the pinned page is copied for the child at fork");
    s.fill(p, a, K4, 0xff).unwrap();
    s.step(|k| k.io_uring_write_fixed(p, ring, 0, f, 0, a, K4)).unwrap();
    assert!(s.step(|k| k.pread(p, f, 0, K4)).unwrap().is_fill(0xff));
    assert!(s.read(c, a, K4).unwrap().is_fill(0));
}

#[test]
fn s36_ro_mapped_iouring_buffer() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    let (ring, f) = ring_file(&mut s, p);
    s.step(|k| k.io_uring_register_buffers(p, ring, &[(a, K4)])).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
    s.step(|k| k.clear_soft_dirty(p)).unwrap();
    s.step(|k| k.mprotect(p, a, K4, Prot::RW)).unwrap();
    s.fill(p, a, K4, 0x42).unwrap();
    assert_eq!(s.copied(), 0, "AE → reuse");
    s.step(|k| k.io_uring_write_fixed(p, ring, 0, f, 0, a, K4)).unwrap();
    assert!(s.step(|k| k.pread(p, f, 0, K4)).unwrap().is_fill(0x42));
}

#[test]
fn swap_out_and_in_keeps_exclusivity() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 9).unwrap();
    s.step(|k| k.madvise(p, a, K4, Advice::PageOut)).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().swapped);
    s.fill(p, a, 1, 8).unwrap();
    assert_eq!(s.copied(), 0, "exclusive swap entry → mapped writable at swap-in");
    // Swapped out, then shared by fork: the first writer copies.
    let b = s.anon(p, K4);
    s.fill(p, b, K4, 3).unwrap();
    s.step(|k| k.madvise(p, b, K4, Advice::PageOut)).unwrap();
    let c = s.fork(p);
    s.fill(c, b, K4, 4).unwrap();
    assert!(s.read(p, b, K4).unwrap().is_fill(3));
    s.fill(p, b, K4, 5).unwrap();
    assert!(s.read(c, b, K4).unwrap().is_fill(4));
}

#[test]
fn pinned_page_is_not_swapped_out() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 9).unwrap();
    s.pin(p, a, 1, rw_longterm(), true).unwrap();
    s.step(|k| k.madvise(p, a, K4, Advice::PageOut)).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().present);
}

#[test]
fn bad_input_returns_errno() {
    let mut s = Sys::new();
    let p = s.spawn();
    assert_eq!(s.step(|k| k.mmap(p, MmapRequest::anon(0))), Err(Errno::EINVAL.into()));
    let a = s.anon(p, 3 * K4);
    assert_eq!(s.step(|k| k.munmap(p, a + 1, K4)), Err(Errno::EINVAL.into()));
    assert_eq!(
        s.step(|k| k.mmap(p, MmapRequest { addr: Some(a), fixed_noreplace: true, ..MmapRequest::anon(K4) })),
        Err(Errno::EEXIST.into())
    );
    assert_eq!(s.step(|k| k.mmap(p, MmapRequest { addr: Some(a + 1), fixed: true, ..MmapRequest::anon(K4) })), Err(Errno::EINVAL.into()));
    assert_eq!(s.pin(p, 0x1000, 1, GupFlags::PIN, false), Err(Errno::EFAULT.into()));
    assert_eq!(s.pin(p, 0x1000, 1, GupFlags::PIN, true), Err(Errno::EFAULT.into()));
    assert_eq!(s.pin(p, a + 1, 1, GupFlags::PIN, true), Err(Errno::EINVAL.into()));
    assert_eq!(s.step(|k| k.mprotect(p, 0x1000, K4, Prot::READ)), Err(Errno::ENOMEM.into()));
    assert_eq!(s.step(|k| k.madvise(p, a + 1, K4, Advice::DontNeed)), Err(Errno::EINVAL.into()));
    assert_eq!(s.read(p, 0x1000, 1), Err(SysError::Signal(Signal::SIGSEGV)));
    assert_eq!(s.step(|k| k.mmap(p, MmapRequest::anon(K4))), Err(Errno::ESRCH.into()), "the task is dead");
}

#[test]
fn overlapping_map_fixed_replaces() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, 2 * K4);
    s.fill(p, a, 2 * K4, 1).unwrap();
    let b = s.mmap(p, MmapRequest { addr: Some(a + K4), fixed: true, ..MmapRequest::anon(K4) });
    assert_eq!(b, a + K4);
    assert!(s.read(p, a + K4, K4).unwrap().is_fill(0));
    assert!(s.read(p, a, K4).unwrap().is_fill(1));
}

/// do_mprotect_pkey() walks the VMAs in order: a hole ends the call with
/// ENOMEM, and the VMAs before it keep their new protection; a range that
/// starts in a hole changes nothing (fuzz seed 1, case 1412;
/// crates/live/scenarios/fuzz-mprotect-stops-at-hole.cow).
#[test]
fn mprotect_stops_at_a_hole_keeping_what_came_before() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, 4 * K4);
    s.fill(p, a, 4 * K4, 1).unwrap();
    s.step(|k| k.munmap(p, a + 3 * K4, K4)).unwrap();
    assert_eq!(s.step(|k| k.mprotect(p, a, 4 * K4, Prot::READ)), Err(Errno::ENOMEM.into()));
    assert_eq!(s.fill(p, a + 2 * K4, 1, 2), Err(SysError::Signal(Signal::SIGSEGV)), "read-only before the hole");
    let q = s.spawn();
    let b = s.anon(q, 2 * K4);
    s.fill(q, b, 2 * K4, 1).unwrap();
    s.step(|k| k.munmap(q, b, K4)).unwrap();
    assert_eq!(s.step(|k| k.mprotect(q, b, 2 * K4, Prot::READ)), Err(Errno::ENOMEM.into()));
    s.fill(q, b + K4, 1, 2).expect("starting in a hole changes nothing");
}
