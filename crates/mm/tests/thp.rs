//! THP scenarios (§8: S15–S17) and the THP memory kinds of the cow selftest.

mod common;
use common::*;
use mm::*;

fn thp(s: &mut Sys, p: Pid) -> u64 {
    s.thp_enable_pmd();
    let a = s.thp_area(p, M2);
    s.fill(p, a, M2, 0x11).unwrap();
    let pm = s.k.pagemap(p, a).unwrap();
    assert!(pm.thp && pm.level == Some(mm::pgtable::Level::Pmd), "PMD-mapped THP");
    a
}

#[test]
fn s15_thp_basic_cow_splits_the_childs_pmd_and_copies_one_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = thp(&mut s, p);
    let c = s.fork(p);
    assert_eq!(s.info(p, a).refcount, 2);
    s.fill(c, a, 1, 0x22).unwrap();
    assert_eq!(s.copied(), 1);
    assert_eq!(s.k.pagemap(c, a + K4).unwrap().level, Some(mm::pgtable::Level::Pte), "child's PMD split");
    assert_eq!(s.k.pagemap(p, a).unwrap().level, Some(mm::pgtable::Level::Pmd), "parent's PMD intact");
    assert_eq!(s.pfn(c, a + K4), s.pfn(p, a + K4), "the other 511 pages stay shared");
    assert!(s.read(p, a, 1).unwrap().is_fill(0x11));
    // The parent's write: the THP is still mapped by two mms → split + copy.
    s.fill(p, a + K4, 1, 0x33).unwrap();
    assert_eq!(s.copied(), 2);
    assert!(s.read(c, a + K4, 1).unwrap().is_fill(0x11));
}

#[test]
fn s16_thp_child_exits_first() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = thp(&mut s, p);
    let c = s.fork(p);
    s.step(|k| k.exit(c)).unwrap();
    s.fill(p, a, M2, 0x44).unwrap();
    assert_eq!(s.copied(), 0);
    assert_eq!(s.k.pagemap(p, a).unwrap().level, Some(mm::pgtable::Level::Pmd));
}

#[test]
fn s17_pinned_thp_at_fork_is_copied_page_by_page() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = thp(&mut s, p);
    let h = s.pin(p, a, 1, GupFlags::PIN.with_write(), false).unwrap();
    assert_eq!(s.info(p, a).pincount, 1);
    let c = s.fork(p);
    assert_eq!(s.copied(), 512);
    assert!(s.k.pagemap(p, a).unwrap().writable && s.k.pagemap(p, a).unwrap().level == Some(mm::pgtable::Level::Pte));
    s.fill(p, a, K4, 0x55).unwrap();
    assert!(s.k.gup_read(h, 0, K4).unwrap().is_fill(0x55));
    assert!(s.read(c, a, K4).unwrap().is_fill(0x11));
}

#[test]
fn pte_mapped_thp_reuse_after_child_exit() {
    // 6.15+: a PTE-mapped THP whose references are all this mm's mappings
    // is reused page by page.
    let mut s = Sys::new();
    let p = s.spawn();
    let a = thp(&mut s, p);
    s.step(|k| k.mprotect(p, a + K4, K4, Prot::READ)).unwrap();
    s.step(|k| k.mprotect(p, a + K4, K4, Prot::RW)).unwrap();
    assert_eq!(s.k.pagemap(p, a).unwrap().level, Some(mm::pgtable::Level::Pte));
    let c = s.fork(p);
    s.step(|k| k.exit(c)).unwrap();
    s.fill(p, a, M2, 0x66).unwrap();
    assert_eq!(s.copied(), 0);
}

#[test]
fn huge_zero_page_read_then_write() {
    let mut s = Sys::new();
    s.thp_enable_pmd();
    let p = s.spawn();
    let a = s.thp_area(p, M2);
    assert!(s.read(p, a, M2).unwrap().is_fill(0));
    let pm = s.k.pagemap(p, a).unwrap();
    assert!(pm.zero_page && pm.level == Some(mm::pgtable::Level::Pmd));
    s.fill(p, a, 1, 1).unwrap();
    let pm = s.k.pagemap(p, a).unwrap();
    assert!(pm.thp && !pm.zero_page && pm.writable);
    // A R/O long-term pin of the huge zero page unshares it.
    let b = s.thp_area(p, M2);
    s.read(p, b, 1).unwrap();
    s.pin(p, b, 1, ro_longterm(), true).unwrap();
    assert!(!s.k.pagemap(p, b).unwrap().zero_page);
}

#[test]
fn mthp_sizes_follow_per_size_settings() {
    let mut s = Sys::new();
    s.k.settings.thp_order[4] = ThpMode::Always; // 64K
    let p = s.spawn();
    let a = s.anon(p, M2);
    s.fill(p, a, 1, 1).unwrap();
    let i = s.info(p, a);
    assert_eq!((i.order, i.mapcount, i.refcount), (4, 16, 16));
    let c = s.fork(p);
    s.fill(c, a, 1, 2).unwrap();
    assert_eq!(s.copied(), 1);
    s.step(|k| k.exit(c)).unwrap();
    s.fill(p, a + K4, 1, 3).unwrap();
    assert_eq!(s.copied(), 1, "only this mm maps it now → reuse");
}

#[test]
fn partial_mremap_and_collapse() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = thp(&mut s, p);
    let b = s.anon(p, M2 / 2);
    s.step(|k| k.mremap(p, a + M2 / 2, M2 / 2, M2 / 2, mm::mremap::MremapFlags::MAYMOVE, Some(b))).unwrap();
    assert!(s.read(p, b, K4).unwrap().is_fill(0x11));
    assert!(s.k.pagemap(p, b).unwrap().thp);
    s.step(|k| k.munmap(p, b, M2 / 2)).unwrap();
    // Collapse a range of small pages.
    let mut s = Sys::new();
    s.thp_disable();
    let p = s.spawn();
    let a = s.thp_area(p, M2);
    s.fill(p, a, M2, 7).unwrap();
    assert!(!s.k.pagemap(p, a).unwrap().thp);
    // A forced collapse ignores the sysfs settings, `never` included.
    s.step(|k| k.madvise(p, a, M2, Advice::Collapse)).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().thp);
    assert!(s.read(p, a + M2 - 1, 1).unwrap().is_fill(7));
}

/// madvise_collapse() as 6.18 answers it (checked live by
/// crates/live/scenarios/fuzz-madvise-collapse-answers.cow): no anon_vma is
/// EINVAL; a block without a page table is EINVAL; a block with an empty
/// table becomes a THP of zeros; no whole aligned block is 0.
#[test]
fn madvise_collapse_answers() {
    let mut s = Sys::new();
    s.thp_disable();
    let p = s.spawn();
    let a = s.thp_area(p, 3 * M2);
    let collapse = |s: &mut Sys, at, len| s.step(|k| k.madvise(p, at, len, Advice::Collapse));
    assert_eq!(collapse(&mut s, a, M2), Err(Errno::EINVAL.into()), "never faulted: no anon_vma");
    s.fill(p, a, K4, 1).unwrap();
    assert_eq!(collapse(&mut s, a + K4, M2 - K4), Ok(()), "no whole aligned block: nothing to do");
    assert!(!s.k.pagemap(p, a).unwrap().thp);
    assert_eq!(collapse(&mut s, a + M2, M2), Err(Errno::EINVAL.into()), "no page table there");
    s.fill(p, a + 2 * M2, K4, 2).unwrap();
    s.step(|k| k.madvise(p, a + 2 * M2, K4, Advice::DontNeed)).unwrap();
    assert_eq!(collapse(&mut s, a + 2 * M2, M2), Ok(()), "an empty table");
    assert!(s.k.pagemap(p, a + 2 * M2).unwrap().thp);
    assert!(s.read(p, a + 2 * M2, M2).unwrap().is_fill(0));
    // The first block, then the missing table: the first is done, EINVAL.
    assert_eq!(collapse(&mut s, a, 2 * M2), Err(Errno::EINVAL.into()));
    assert!(s.k.pagemap(p, a).unwrap().thp);
    assert!(s.read(p, a, K4).unwrap().is_fill(1));
}

#[test]
fn swapped_out_thp_comes_back_as_small_pages() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = thp(&mut s, p);
    s.step(|k| k.madvise(p, a, M2, Advice::PageOut)).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().swapped);
    let c = s.fork(p);
    s.fill(c, a, K4, 0x99).unwrap();
    assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
}
