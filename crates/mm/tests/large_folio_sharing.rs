//! Large-folio sharing as the 6.18 kernel tracks it: the CONFIG_MM_ID slots
//! and "maybe mapped shared" bit (include/linux/rmap.h), the COW reuse that
//! follows them (`__wp_can_reuse_large_anon_folio()`), and pagemap's
//! exclusive bit and kpagecount under CONFIG_PAGE_MAPCOUNT on and off.
//! The live twins are crates/live/scenarios/mthp-three-mms-*.cow,
//! thp-three-mms-split-slot-undercounts.cow and
//! thp-pmd-exclusive-bit-asks-first-page.cow.

mod common;
use common::*;
use mm::folio::{Folio, FolioId};
use mm::rmap::MmIdSlot;
use mm::*;

const K64: u64 = 16 * K4;

/// A way to corrupt a folio's counters.
type Breakage = fn(&mut Folio);

/// A 64K mTHP written by `p` (mTHP 64K `always`, everything else off).
fn mthp(s: &mut Sys, p: Pid) -> u64 {
    s.k.settings.thp_global = ThpMode::Never;
    s.k.settings.thp_order[4] = ThpMode::Always;
    let a = s.anon(p, M2);
    s.fill(p, a, K64, 0x11).unwrap();
    assert_eq!(s.info(p, a).order, 4);
    a
}

fn folio_at(s: &Sys, p: Pid, a: u64) -> (FolioId, &Folio) {
    let (id, _) = s.k.folios.by_pfn(s.pfn(p, a).unwrap()).unwrap();
    (id, s.k.folios.get(id))
}

fn slot(s: &Sys, p: Pid, mapcount: u32) -> Option<MmIdSlot> {
    Some(MmIdSlot { mm: s.k.task_mm(p).unwrap(), mapcount })
}

#[test]
fn three_mms_over_an_mthp_the_survivor_without_a_slot_copies() {
    for page_mapcount in ["on", "off"] {
        let mut s = Sys::new().set("page_mapcount", page_mapcount);
        let p = s.spawn();
        let a = mthp(&mut s, p);
        assert_eq!(folio_at(&s, p, a).1.mm_ids.slots, [slot(&s, p, 16), None]);
        assert!(!folio_at(&s, p, a).1.mm_ids.shared);
        let c1 = s.fork(p);
        let ids = folio_at(&s, p, a).1.mm_ids;
        assert_eq!((ids.slots, ids.shared), ([slot(&s, p, 16), slot(&s, c1, 16)], true));
        let c2 = s.fork(p);
        let ids = folio_at(&s, p, a).1.mm_ids;
        assert_eq!(ids.slots, [slot(&s, p, 16), slot(&s, c1, 16)], "no slot left for the third mm");
        assert_eq!(s.info(p, a).mapcount, 48);
        s.step(|k| k.exit(c1)).unwrap();
        let ids = folio_at(&s, p, a).1.mm_ids;
        assert_eq!((ids.slots, ids.shared), ([slot(&s, p, 16), None], true), "P and C2 still map it");
        s.step(|k| k.munmap(p, a, K64)).unwrap();
        let (_, f) = folio_at(&s, c2, a);
        assert_eq!((f.mm_ids.slots, f.mm_ids.shared), ([None, None], true), "no slot owns C2's 16 mappings");
        assert!(f.maybe_mapped_shared());
        // pagemap: the page's own mapcount (1) with CONFIG_PAGE_MAPCOUNT,
        // the shared bit without it.
        let exclusive = s.k.pagemap(c2, a + K4).unwrap().exclusive;
        assert_eq!(exclusive, page_mapcount == "on", "page_mapcount={page_mapcount}");
        s.fill(c2, a, 1, 0x22).unwrap();
        assert_eq!(s.copied(), 1, "the bit says shared → copy");
        assert_eq!(s.info(c2, a).order, 0);
        assert_eq!(s.info(c2, a + K4).order, 4);
        assert!(s.read(c2, a + 1, K64 - 1).unwrap().is_fill(0x11));
    }
}

#[test]
fn three_mms_over_an_mthp_the_slot_owner_left_alone_reuses() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = mthp(&mut s, p);
    let c1 = s.fork(p);
    let c2 = s.fork(p);
    s.step(|k| k.exit(c2)).unwrap();
    assert!(folio_at(&s, p, a).1.mm_ids.shared, "P and C1 hold both slots");
    s.step(|k| k.exit(c1)).unwrap();
    let ids = folio_at(&s, p, a).1.mm_ids;
    assert_eq!((ids.slots, ids.shared), ([slot(&s, p, 16), None], false), "P's slot owns every mapping → bit cleared");
    s.fill(p, a, K64, 0x33).unwrap();
    assert_eq!(s.copied(), 0);
    assert_eq!(s.info(p, a + K64 - K4).order, 4);
}

#[test]
fn a_split_pmd_leaves_the_survivors_slot_undercounting() {
    let mut s = Sys::new();
    s.k.settings.thp_global = ThpMode::Always;
    let p = s.spawn();
    let a = s.thp_area(p, M2);
    s.fill(p, a, M2, 0x11).unwrap();
    let c1 = s.fork(p);
    let c2 = s.fork(p);
    s.step(|k| k.exit(c1)).unwrap();
    // C2's write splits its PMD: 512 PTEs counted (C2 takes the free slot),
    // then its PMD mapping, which the slot never counted, removed.
    s.fill(c2, a, 1, 0x22).unwrap();
    assert_eq!(s.copied(), 1);
    let (_, f) = folio_at(&s, p, a + K4);
    assert_eq!(f.mm_ids.slots, [slot(&s, p, 1), slot(&s, c2, 510)]);
    assert_eq!(f.mapcount, 1 + 511);
    s.step(|k| k.munmap(p, a, M2)).unwrap();
    let (_, f) = folio_at(&s, c2, a + K4);
    assert_eq!((f.mm_ids.slots, f.mm_ids.shared, f.mapcount), ([None, slot(&s, c2, 510)], true, 511));
    s.fill(c2, a + K4, 1, 0x33).unwrap();
    assert_eq!(s.copied(), 2, "C2 is alone, but 510 ≠ 511 keeps the bit set → copy");
    assert!(s.read(c2, a + 2 * K4, K4).unwrap().is_fill(0x11));
}

#[test]
fn large_anon_reuse_never_copies_where_6_15_reuses() {
    for (value, copies) in [("mm_id", 0), ("never", 1)] {
        let mut s = Sys::new().set("large_anon_reuse", value);
        let p = s.spawn();
        let a = mthp(&mut s, p);
        let c = s.fork(p);
        s.step(|k| k.exit(c)).unwrap();
        s.fill(p, a + K4, 1, 0x44).unwrap();
        assert_eq!(s.copied(), copies, "large_anon_reuse={value}");
        assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
    }
}

#[test]
fn pmd_mapped_thp_exclusive_bit_and_kpagecount_follow_page_mapcount() {
    for page_mapcount in ["on", "off"] {
        let mut s = Sys::new().set("page_mapcount", page_mapcount);
        s.k.settings.thp_global = ThpMode::Always;
        let p = s.spawn();
        let a = s.thp_area(p, M2);
        s.fill(p, a, M2, 0x11).unwrap();
        let c = s.fork(p);
        s.fill(c, a, 1, 0x22).unwrap();
        // Page 0 is mapped by P's PMD alone; pages 1.. also by C's PTEs.
        let on = page_mapcount == "on";
        for off in [0, K4, M2 - K4] {
            let e = s.k.pagemap(p, a + off).unwrap();
            assert_eq!(e.exclusive, on, "page_mapcount={page_mapcount}: the PMD's first page answers for {off:#x}");
        }
        assert!(!s.k.pagemap(c, a + K4).unwrap().exclusive);
        // kpagecount: the page's own count, or the folio's average per page
        // (511 PTEs + one PMD over 512 pages → 2).
        assert_eq!(s.info(p, a).page_mapcount, if on { 1 } else { 2 });
        assert_eq!(s.info(p, a + K4).page_mapcount, 2);
    }
}

#[test]
fn huge_zero_pmd_reads_exclusive_only_without_page_mapcount() {
    for (page_mapcount, exclusive) in [("on", false), ("off", true)] {
        let mut s = Sys::new().set("page_mapcount", page_mapcount);
        s.k.settings.thp_global = ThpMode::Always;
        let p = s.spawn();
        let a = s.thp_area(p, M2);
        s.read(p, a, 1).unwrap();
        let e = s.k.pagemap(p, a).unwrap();
        assert!(e.zero_page && e.level == Some(mm::pgtable::Level::Pmd));
        assert_eq!(e.exclusive, exclusive, "page_mapcount={page_mapcount}");
    }
}

#[test]
fn invariants_catch_wrong_mm_id_bookkeeping() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = mthp(&mut s, p);
    let c = s.fork(p);
    let (id, _) = folio_at(&s, p, a);
    let good = s.k.folios.get(id).clone();
    let cases: [(&str, Breakage); 4] = [
        ("bit cleared while two mms map it", |f| f.mm_ids.shared = false),
        ("slot counts more than its mm maps", |f| f.mm_ids.slots[1].as_mut().unwrap().mapcount = 17),
        ("both slots the same mm", |f| f.mm_ids.slots[1] = f.mm_ids.slots[0]),
        ("a page's mapcount off by one", |f| f.page_mapcounts.add(3, 1, 1)),
    ];
    for (what, break_it) in cases {
        break_it(s.k.folios.get_mut(id));
        assert!(s.k.check_invariants().is_err(), "not caught: {what}");
        *s.k.folios.get_mut(id) = good.clone();
    }
    s.k.check_invariants().unwrap();
    s.step(|k| k.exit(c)).unwrap();
    // One mm left, P's slot owns everything: the bit must be clear.
    let f = s.k.folios.get_mut(id);
    f.mm_ids.shared = true;
    assert!(s.k.check_invariants().is_err(), "not caught: bit set although one slot owns every mapping");
}
