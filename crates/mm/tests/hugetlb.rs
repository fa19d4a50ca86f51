//! hugetlb (§5.3 E1–E8, §8 S12, S13, S18–S23, S37, S38), with the pool
//! counters (Total, Free, Rsvd, Surp) after every step.

mod common;
use common::*;
use mm::*;

const H2: HugeSize = HugeSize::Size2M;
const H1: HugeSize = HugeSize::Size1G;

fn sys(pages: u64) -> (Sys, Pid) {
    let mut s = Sys::new();
    s.hugetlb_pool(H2, pages);
    let p = s.spawn();
    (s, p)
}

#[test]
fn e1_private_happy_path() {
    let (mut s, p) = sys(2);
    let a = s.huge(p, 2 * M2, H2).unwrap();
    assert_eq!(s.pool(H2), (2, 2, 2, 0));
    s.fill(p, a, 1, 1).unwrap();
    assert_eq!(s.pool(H2), (2, 1, 1, 0));
    s.read(p, a + M2, 1).unwrap();
    assert_eq!(s.pool(H2), (2, 0, 0, 0), "S38: a read allocates and consumes a reservation");
    s.step(|k| k.munmap(p, a, 2 * M2)).unwrap();
    assert_eq!(s.pool(H2), (2, 2, 0, 0));
}

#[test]
fn e2_s18_child_cows_without_spare_page() {
    let (mut s, p) = sys(1);
    let a = s.huge(p, M2, H2).unwrap();
    assert_eq!(s.pool(H2), (1, 1, 1, 0));
    s.fill(p, a, M2, 0xaa).unwrap();
    assert_eq!(s.pool(H2), (1, 0, 0, 0));
    let c = s.fork(p);
    let i = s.info(p, a);
    assert_eq!((i.mapcount, i.refcount, i.anon_exclusive), (2, 2, false));
    assert_eq!(s.fill(c, a, 1, 1), Err(SysError::Signal(Signal::SIGBUS)));
    assert_eq!(s.k.task_state(c), Some(TaskState::Killed(Signal::SIGBUS)));
    s.fill(p, a, 1, 2).unwrap();
    assert_eq!(s.copied(), 0, "child died: mapcount 1 → reuse");
}

#[test]
fn e2_parent_steals_when_child_alive() {
    let (mut s, p) = sys(1);
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, M2, 0xaa).unwrap();
    let c = s.fork(p);
    // S19 / E3: the parent writes first.
    s.fill(p, a, 1, 0xbb).unwrap();
    assert_eq!(s.k.stats.stolen, 1);
    assert_eq!(s.copied(), 0);
    assert_eq!(s.pool(H2), (1, 0, 0, 0));
    assert_eq!(s.read(c, a, 1), Err(SysError::Signal(Signal::SIGBUS)), "the child's VMA was marked HPAGE_RESV_UNMAPPED");
}

#[test]
fn e4_s20_parent_cows_with_spare_page() {
    let (mut s, p) = sys(2);
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, M2, 0xaa).unwrap();
    assert_eq!(s.pool(H2), (2, 1, 0, 0));
    let c = s.fork(p);
    s.fill(p, a, 1, 0xbb).unwrap();
    assert_eq!(s.pool(H2), (2, 0, 0, 0));
    assert_eq!(s.copied(), 512);
    s.fill(c, a, 1, 0xcc).unwrap();
    assert_eq!(s.copied(), 512, "the child reuses the original");
    assert!(s.read(c, a + 1, 1).unwrap().is_fill(0xaa));
}

#[test]
fn e5_s21_spare_page_belongs_to_someone_else() {
    let (mut s, p) = sys(2);
    let a = s.huge(p, 2 * M2, H2).unwrap();
    assert_eq!(s.pool(H2), (2, 2, 2, 0));
    s.fill(p, a, 1, 1).unwrap();
    assert_eq!(s.pool(H2), (2, 1, 1, 0));
    let c = s.fork(p);
    assert_eq!(s.fill(c, a, 1, 2), Err(SysError::Signal(Signal::SIGBUS)));
    assert_eq!(s.pool(H2), (2, 1, 1, 0));
}

#[test]
fn e6_noreserve() {
    let (mut s, p1) = sys(1);
    let p2 = s.spawn();
    let a = s.step(|k| k.mmap(p1, MmapRequest { hugetlb: Some(H2), noreserve: true, ..MmapRequest::anon(M2) })).unwrap();
    assert_eq!(s.pool(H2), (1, 1, 0, 0));
    let b = s.huge(p2, M2, H2).unwrap();
    assert_eq!(s.pool(H2), (1, 1, 1, 0));
    assert_eq!(s.fill(p1, a, 1, 1), Err(SysError::Signal(Signal::SIGBUS)));
    s.fill(p2, b, 1, 1).unwrap();
    assert_eq!(s.pool(H2), (1, 0, 0, 0));
}

#[test]
fn e7_shared_file() {
    let (mut s, pa) = sys(2);
    let pb = s.spawn();
    let fa = s.step(|k| k.create_file(pa, InodeKind::Hugetlbfs, Some(H2))).unwrap();
    s.step(|k| k.ftruncate(pa, fa, 2 * M2)).unwrap();
    let req = MmapRequest { shared: true, fd: Some(fa), ..MmapRequest::anon(2 * M2) };
    let a = s.mmap(pa, req.clone());
    assert_eq!(s.pool(H2), (2, 2, 2, 0));
    // B gets the same file (fork shares the fd table; here: a child of A).
    let b_task = s.fork(pa);
    let b = s.mmap(b_task, req);
    assert_eq!(s.pool(H2), (2, 2, 2, 0), "a second mapper reserves nothing new");
    s.fill(pa, a, 1, 0x77).unwrap();
    assert_eq!(s.pool(H2), (2, 1, 1, 0));
    assert!(s.read(b_task, b, 1).unwrap().is_fill(0x77));
    assert_eq!(s.pfn(pa, a), s.pfn(b_task, b));
    s.step(|k| k.munmap(pa, a, 2 * M2)).unwrap();
    s.step(|k| k.munmap(b_task, b, 2 * M2)).unwrap();
    assert_eq!(s.pool(H2), (2, 1, 1, 0), "page 0 stays in the file, page 1's reservation with the inode");
    s.step(|k| k.ftruncate(pa, fa, 0)).unwrap();
    assert_eq!(s.pool(H2), (2, 2, 0, 0));
    let _ = pb;
}

#[test]
fn e8_s23_pinned_hugetlb_at_fork() {
    let (mut s, p) = sys(1);
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, 1, 1).unwrap();
    s.pin(p, a, 512, rw_longterm(), false).unwrap();
    assert_eq!(s.info(p, a).pincount, 512);
    assert_eq!(s.step(|k| k.fork(p)), Err(Errno::ENOMEM.into()));
    let (mut s, p) = sys(2);
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, 1, 1).unwrap();
    let h = s.pin(p, a, 512, rw_longterm(), false).unwrap();
    let c = s.fork(p);
    assert_eq!(s.pool(H2).1, 0);
    assert_ne!(s.pfn(c, a), s.pfn(p, a));
    s.fill(p, a, 1, 2).unwrap();
    assert!(s.k.gup_read(h, 0, 1).unwrap().is_fill(2));
    assert!(s.read(c, a, 1).unwrap().is_fill(1));
}

#[test]
fn s22_ro_pin_of_shared_huge_page() {
    let (mut s, p) = sys(1);
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, M2, 1).unwrap();
    let c = s.fork(p);
    let h = s.pin(p, a, 1, ro_longterm(), false).unwrap();
    assert_eq!(s.k.stats.stolen, 1, "no page for the copy → steal from the child");
    assert!(s.info(p, a).anon_exclusive);
    assert!(!s.k.pagemap(p, a).unwrap().writable);
    assert_eq!(s.read(c, a, 1), Err(SysError::Signal(Signal::SIGBUS)));
    s.fill(p, a, 1, 9).unwrap();
    assert!(s.k.gup_read(h, 0, 1).unwrap().is_fill(9));
    // With a spare page the owner copies and pins the copy.
    let (mut s, p) = sys(2);
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, M2, 1).unwrap();
    let c = s.fork(p);
    s.pin(p, a, 1, ro_longterm(), false).unwrap();
    assert_eq!(s.copied(), 512);
    assert!(!s.k.pagemap(p, a).unwrap().writable);
    assert!(s.read(c, a, 1).unwrap().is_fill(1));
}

/// The cow selftest's "vmsplice() + unmap in child" on hugetlb.
fn vmsplice_unmap_in_child(s: &mut Sys, h: HugeSize) -> Contents {
    let p = s.spawn();
    let a = s.huge(p, h.bytes(), h).unwrap();
    s.fill(p, a, h.bytes(), 0).unwrap();
    let c = s.fork(p);
    let (r, w) = s.step(|k| k.pipe(c)).unwrap();
    let n = s.step(|k| k.vmsplice(c, w, a, h.bytes())).unwrap();
    assert_eq!(n, 16 * K4, "a pipe holds 16 buffers");
    s.step(|k| k.munmap(c, a, h.bytes())).unwrap();
    s.fill(p, a, h.bytes(), 0xff).unwrap();
    s.step(|k| k.read_fd(c, r, n)).unwrap()
}

/// "vmsplice() before fork(), unmap in parent after fork()".
fn vmsplice_before_fork_unmap_in_parent(s: &mut Sys, h: HugeSize) -> Contents {
    let p = s.spawn();
    let a = s.huge(p, h.bytes(), h).unwrap();
    s.fill(p, a, h.bytes(), 0).unwrap();
    let (r, w) = s.step(|k| k.pipe(p)).unwrap();
    let n = s.step(|k| k.vmsplice(p, w, a, h.bytes())).unwrap();
    let c = s.fork(p);
    s.step(|k| k.munmap(p, a, h.bytes())).unwrap();
    s.fill(c, a, h.bytes(), 0xff).unwrap();
    s.step(|k| k.read_fd(p, r, n)).unwrap()
}

#[test]
fn s12_s13_hugetlb_vmsplice_leaks_under_6_18() {
    for h in [H2, H1] {
        let mut s = Sys::new();
        s.hugetlb_pool(h, 2);
        assert!(vmsplice_unmap_in_child(&mut s, h).is_fill(0xff), "leak parent → child ({}K)", h.kb());
        let mut s = Sys::new();
        s.hugetlb_pool(h, 2);
        assert!(vmsplice_before_fork_unmap_in_parent(&mut s, h).is_fill(0xff), "leak child → parent ({}K)", h.kb());
    }
}

#[test]
fn s12_s13_no_leak_under_refcount_rule_or_vmsplice_pin() {
    for (knob, val) in [("hugetlb_reuse", "refcount"), ("vmsplice", "pin")] {
        for h in [H2, H1] {
            let mut s = Sys::new().set(knob, val);
            s.hugetlb_pool(h, 2);
            assert!(vmsplice_unmap_in_child(&mut s, h).is_fill(0), "{knob}={val} {}K", h.kb());
            let mut s = Sys::new().set(knob, val);
            s.hugetlb_pool(h, 2);
            assert!(vmsplice_before_fork_unmap_in_parent(&mut s, h).is_fill(0), "{knob}={val} {}K", h.kb());
        }
    }
}

/// A 2 MiB private mapping in a pool of exactly one page, written, then
/// shared with a fork child: (parent, child, address).
fn owner_and_child(s: &mut Sys) -> (Pid, Pid, u64) {
    s.hugetlb_pool(H2, 1);
    let p = s.spawn();
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, M2, 0).unwrap();
    let c = s.fork(p);
    (p, c, a)
}

/// docs/divergences.md §4, checked on 6.18: when the reservation owner
/// unmaps a page its child still maps, `__unmap_hugepage_range()` restores
/// the reservation (map entry dropped, folio flagged), `hugetlb_vm_op_close()`
/// returns it at once, and the flagged folio adds it back when it is finally
/// freed — so `resv` reads -1 (ULONG_MAX) in between and 0 at the end.
#[test]
fn owner_unmap_of_a_shared_page_wraps_resv_until_the_page_is_freed() {
    let mut s = Sys::new();
    let (p, c, a) = owner_and_child(&mut s);
    assert_eq!(s.pool(H2), (1, 0, 0, 0));
    s.step(|k| k.munmap(p, a, M2)).unwrap();
    assert_eq!(s.pool(H2), (1, 0, u64::MAX, 0), "resv_hugepages reads 18446744073709551615");
    s.fill(c, a, 1, 0xff).unwrap();
    assert_eq!(s.copied(), 0, "the child is the only mapper now: reuse");
    s.step(|k| k.exit(c)).unwrap();
    assert_eq!(s.pool(H2), (1, 1, 0, 0));
}

/// While `resv` is below zero a new reservation passes
/// gather_surplus_pages() (-1 + 1 against 0 free pages) but not the cpuset
/// check of hugetlb_acct_memory(): 1 > 0 free pages, ENOMEM, and the raise is
/// undone (crates/live/scenarios/hugetlb-acct-refused-while-resv-below-zero.cow).
#[test]
fn a_reservation_while_resv_is_below_zero_needs_a_free_page() {
    let mut s = Sys::new();
    let (p, c, a) = owner_and_child(&mut s);
    s.step(|k| k.munmap(p, a, M2)).unwrap();
    assert_eq!(s.pool(H2), (1, 0, u64::MAX, 0));
    assert_eq!(s.huge(p, M2, H2), Err(Errno::ENOMEM.into()));
    assert_eq!(s.pool(H2), (1, 0, u64::MAX, 0), "the raise is undone");
    s.step(|k| k.exit(c)).unwrap();
    assert_eq!(s.pool(H2), (1, 1, 0, 0));
    let b = s.huge(p, M2, H2).expect("a free page for the reservation now");
    s.fill(p, b, M2, 2).unwrap();
    assert_eq!(s.pool(H2), (1, 0, 0, 0));
}

/// The restored reservation does not come with a free page: the owner's
/// refault after MADV_DONTNEED finds the pool empty (the child still uses
/// the only page) and gets SIGBUS although its map says "reserved".
#[test]
fn owner_refault_after_dontneed_of_a_shared_page_has_no_page() {
    let mut s = Sys::new();
    let (p, c, a) = owner_and_child(&mut s);
    s.step(|k| k.madvise(p, a, M2, Advice::DontNeed)).unwrap();
    // Back in the owner's map, counted in `resv` only once the page is freed.
    assert_eq!(s.pool(H2), (1, 0, 0, 0));
    assert_eq!(s.read(p, a, 1), Err(SysError::Signal(Signal::SIGBUS)));
    assert!(s.read(c, a, 1).unwrap().is_fill(0));
}

#[test]
fn refcount_rule_with_exact_pool_steals_or_sigbuses() {
    // The child holds a pipe reference (foreign), then the parent writes.
    // Under the refcount rule the parent must copy, has no page, steals
    // from the child — and the pipe's reference still makes the page look
    // shared: the kernel would retry forever. The model reports the livelock.
    let mut s = Sys::new().set("hugetlb_reuse", "refcount");
    let (p, c, a) = owner_and_child(&mut s);
    let (_r, w) = s.step(|k| k.pipe(c)).unwrap();
    s.step(|k| k.vmsplice(c, w, a, K4)).unwrap();
    assert_eq!(s.fill(p, a, 1, 0xff), Err(SysError::Livelock));
    assert_eq!(s.k.stats.stolen, 1);
    assert_eq!(s.read(c, a, 1), Err(SysError::Signal(Signal::SIGBUS)), "the child's page was stolen");
    // With hugetlb_cow_fail=sigbus, the owner itself dies instead.
    let mut s = Sys::new().set("hugetlb_reuse", "refcount").set("hugetlb_cow_fail", "sigbus");
    let (p, c, a) = owner_and_child(&mut s);
    assert_eq!(s.fill(p, a, 1, 0xff), Err(SysError::Signal(Signal::SIGBUS)));
    assert!(s.read(c, a, 1).unwrap().is_fill(0));
}

#[test]
fn refcount_rule_reuses_when_all_references_are_explained() {
    let mut s = Sys::new().set("hugetlb_reuse", "refcount");
    let (p, c, a) = owner_and_child(&mut s);
    s.step(|k| k.exit(c)).unwrap();
    s.fill(p, a, 1, 1).unwrap();
    assert_eq!(s.copied(), 0, "mapping + fault-path reference = expected");
}

#[test]
fn s37_dontneed_granularity() {
    let (mut s, p) = sys(1);
    let a = s.huge(p, M2, H2).unwrap();
    s.fill(p, a, 1, 1).unwrap();
    assert_eq!(s.step(|k| k.madvise(p, a + K4, K4, Advice::DontNeed)), Err(Errno::EINVAL.into()));
    s.step(|k| k.madvise(p, a, K4, Advice::DontNeed)).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().present, "a length under one huge page zaps nothing");
    s.step(|k| k.madvise(p, a, M2, Advice::DontNeed)).unwrap();
    assert!(!s.k.pagemap(p, a).unwrap().present);
    assert_eq!(s.pool(H2), (1, 1, 1, 0), "the owner's reservation is re-established");
}

#[test]
fn gup_fast_on_pmd_and_pud_leaves() {
    let mut s = Sys::new();
    s.hugetlb_pool(H1, 1);
    let p = s.spawn();
    let a = s.huge(p, PUD_SIZE, H1).unwrap();
    s.fill(p, a, PUD_SIZE, 3).unwrap();
    s.k.take_events();
    let h = s.pin(p, a, 512, rw_longterm(), true).unwrap();
    assert!(!s.k.events().iter().any(|e| e.kind == EventKind::Bail));
    assert_eq!(s.info(p, a).pincount, 512);
    s.step(|k| k.unpin(p, h)).unwrap();
    assert_eq!(s.info(p, a).pincount, 0);
}

#[test]
fn bad_hugetlb_input() {
    let (mut s, p) = sys(2);
    // A size with no pool configured on this machine.
    assert_eq!(s.huge(p, M2, H1).map(|_| ()), Err(Errno::ENOMEM.into()));
    // Misaligned fixed address.
    assert_eq!(
        s.step(|k| k.mmap(p, MmapRequest { addr: Some(0x7000_0000_1000), fixed: true, hugetlb: Some(H2), ..MmapRequest::anon(M2) })),
        Err(Errno::EINVAL.into())
    );
    // A misaligned length is rounded up to the huge page size.
    let a = s.huge(p, M2 - K4, H2).unwrap();
    assert_eq!(s.pool(H2), (2, 2, 1, 0));
    assert_eq!(s.step(|k| k.munmap(p, a, K4)), Err(Errno::EINVAL.into()));
    // MAP_NORESERVE overcommit: mmap succeeds, the touch fails.
    let b = s.step(|k| k.mmap(p, MmapRequest { hugetlb: Some(H2), noreserve: true, ..MmapRequest::anon(4 * M2) })).unwrap();
    s.fill(p, b, 1, 1).unwrap();
    assert_eq!(s.fill(p, b + M2, 1, 1), Err(SysError::Signal(Signal::SIGBUS)));
    let p = s.spawn();
    let f = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(H2))).unwrap();
    assert_eq!(s.step(|k| k.ftruncate(p, f, M2 + K4)), Err(Errno::EINVAL.into()));
    // More than the pool can reserve.
    assert_eq!(s.huge(p, 8 * M2, H2).map(|_| ()), Err(Errno::ENOMEM.into()));
}

#[test]
fn surplus_pages_with_overcommit() {
    let mut s = Sys::new();
    s.step(|k| k.set_overcommit_hugepages(H2, 2));
    let p = s.spawn();
    let a = s.huge(p, 2 * M2, H2).unwrap();
    assert_eq!(s.pool(H2), (2, 2, 2, 2));
    s.fill(p, a, 2 * M2, 1).unwrap();
    assert_eq!(s.pool(H2), (2, 0, 0, 2));
    s.step(|k| k.munmap(p, a, 2 * M2)).unwrap();
    assert_eq!(s.pool(H2), (0, 0, 0, 0));
}

/// docs/divergences.md §1: `hugetlb_pud_fork=skip` is 6.18's fork when the
/// child's PUD table carries a stale share count. The child gets no entry;
/// with a spare page its first touch faults in a zeroed page (the data is
/// lost), without one it gets SIGBUS; the parent's page stays exclusive.
#[test]
fn pud_fork_skip_leaves_the_child_without_the_1g_page() {
    for (pool, child_read) in [(1, Err(SysError::Signal(Signal::SIGBUS))), (2, Ok(0u8))] {
        let mut s = Sys::new().set("hugetlb_pud_fork", "skip");
        s.hugetlb_pool(H1, pool);
        let p = s.spawn();
        let a = s.huge(p, PUD_SIZE, H1).unwrap();
        s.fill(p, a, PUD_SIZE, 0x5a).unwrap();
        let c = s.fork(p);
        assert!(!s.k.pagemap(c, a).unwrap().present);
        assert!(s.k.pagemap(p, a).unwrap().exclusive);
        let got = s.read(c, a, 1).map(|d| d.single_byte().unwrap());
        assert_eq!(got, child_read, "pool of {pool}");
        s.fill(p, a, 1, 0xff).unwrap();
        assert_eq!(s.copied(), 0, "the parent's page was never shared");
    }
}

/// hugetlb-madvise.c's file cases: a private mapping's COW copies are
/// freed by a hole punch along with the file's pages
/// (`hugetlb_vmdelete_list()` unmaps private VMAs too), and MADV_REMOVE
/// on the shared mapping is that punch.
#[test]
fn punch_hole_frees_file_pages_and_private_copies() {
    let (mut s, p) = sys(4);
    let f = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(H2))).unwrap();
    s.step(|k| k.fallocate(p, f, 0, 2 * M2)).unwrap();
    assert_eq!(s.pool(H2), (4, 2, 0, 0));
    let private = s.mmap(p, MmapRequest { fd: Some(f), ..MmapRequest::anon(2 * M2) });
    assert_eq!(s.pool(H2), (4, 2, 2, 0), "a private mapping reserves its whole size");
    s.read(p, private, 1).unwrap();
    s.read(p, private + M2, 1).unwrap();
    assert_eq!(s.pool(H2).1, 2, "reads map the file's pages");
    s.fill(p, private, 1, 1).unwrap();
    s.fill(p, private + M2, 1, 2).unwrap();
    assert_eq!(s.pool(H2), (4, 0, 0, 0), "writes copy from the reservation");
    s.step(|k| k.fallocate_punch_hole(p, f, 0, 2 * M2)).unwrap();
    assert_eq!(s.pool(H2), (4, 4, 2, 0), "file pages and private copies freed, the owner's reservations restored");
    assert!(s.read(p, private, 1).unwrap().is_fill(0), "a refault finds a hole: a new zeroed page");
    let shared = s.mmap(p, MmapRequest { shared: true, fd: Some(f), ..MmapRequest::anon(2 * M2) });
    s.fill(p, shared, 2 * M2, 7).unwrap();
    assert_eq!(s.pool(H2).1, 1);
    s.step(|k| k.madvise(p, shared, 2 * M2, Advice::DontNeed)).unwrap();
    assert_eq!(s.pool(H2).1, 1, "DONTNEED of a shared mapping frees nothing");
    s.step(|k| k.madvise(p, shared + M2, M2, Advice::Remove)).unwrap();
    assert_eq!(s.pool(H2).1, 2, "REMOVE punches the second page");
    assert!(s.read(p, shared, 1).unwrap().is_fill(7), "the first page kept its data");
    assert_eq!(s.step(|k| k.madvise(p, private, M2, Advice::Remove)), Err(Errno::EACCES.into()), "REMOVE needs a shared writable VMA");
}

/// `hugetlbfs_punch_hole()` zeroes the pieces of huge pages at the ends
/// of the range and removes only the whole pages.
#[test]
fn punch_hole_zeroes_partial_huge_pages() {
    let (mut s, p) = sys(2);
    let f = s.step(|k| k.create_file(p, InodeKind::Hugetlbfs, Some(H2))).unwrap();
    s.step(|k| k.fallocate(p, f, 0, 2 * M2)).unwrap();
    let a = s.mmap(p, MmapRequest { shared: true, fd: Some(f), ..MmapRequest::anon(2 * M2) });
    s.fill(p, a, 2 * M2, 9).unwrap();
    s.step(|k| k.fallocate_punch_hole(p, f, M2 - 4096, 3 * 4096)).unwrap();
    assert_eq!(s.pool(H2).1, 0, "no whole page inside the range");
    assert!(s.read(p, a + M2 - 4096, 4096).unwrap().is_fill(0));
    assert!(s.read(p, a + M2, 8192).unwrap().is_fill(0));
    assert!(s.read(p, a + M2 + 8192, 4096).unwrap().is_fill(9));
    assert!(s.read(p, a, M2 - 4096).unwrap().is_fill(9));
    assert_eq!(s.step(|k| k.fallocate_punch_hole(p, f, 0, 0)), Err(Errno::EINVAL.into()));
}

/// hugepage-shm.c: a SHM_HUGETLB segment reserves its pages at shmget,
/// attaching reserves nothing more, and the pages go when the segment is
/// removed and detached.
#[test]
fn sysv_shm_hugetlb_segment() {
    let (mut s, p) = sys(3);
    assert_eq!(s.step(|k| k.shmget(p, 3 * M2 + 1, Some(H2), false)), Err(Errno::ENOMEM.into()), "rounded up to 4 huge pages");
    assert_eq!(s.pool(H2), (3, 3, 0, 0));
    let id = s.step(|k| k.shmget(p, 2 * M2 - 4096, Some(H2), false)).unwrap();
    assert_eq!(s.pool(H2), (3, 3, 2, 0), "shmget reserves the rounded-up size");
    let a = s.step(|k| k.shmat(p, id)).unwrap();
    assert_eq!(s.pool(H2), (3, 3, 2, 0), "shmat reserves nothing more");
    let c = s.fork(p);
    s.fill(p, a, 2 * M2, 0x5a).unwrap();
    assert_eq!(s.pool(H2), (3, 1, 0, 0));
    assert!(s.read(c, a + M2, 1).unwrap().is_fill(0x5a), "the child's attach shares the pages");
    assert_eq!(s.step(|k| k.shm_nattch(id)), 2);
    s.step(|k| k.shmdt(p, a)).unwrap();
    assert_eq!(s.step(|k| k.shmdt(p, a)), Err(Errno::EINVAL.into()));
    s.step(|k| k.shmctl_rmid(p, id)).unwrap();
    assert_eq!(s.pool(H2), (3, 1, 0, 0), "still attached in the child");
    s.step(|k| k.shmdt(c, a)).unwrap();
    assert_eq!(s.pool(H2), (3, 3, 0, 0), "the last detach destroys the segment");
    assert_eq!(s.step(|k| k.shmat(p, id)), Err(Errno::EINVAL.into()));
    let id2 = s.step(|k| k.shmget(p, M2, Some(H2), false)).unwrap();
    s.step(|k| k.shmctl_rmid(p, id2)).unwrap();
    assert_eq!(s.pool(H2), (3, 3, 0, 0), "an unattached segment goes at IPC_RMID");
}
