//! A task's loads and stores through PTEs that map one large folio page
//! after page are taken as one piece by `write_mem` and `read_mem`
//! (`PageTable::touch_write_run` for stores, `Kernel::pte_run_of_folio`
//! for loads). The end state must be exactly the one the
//! page-by-page store machine reaches (the race explorer steps it), and a
//! load must return the bytes stored.

mod common;
use common::*;
use mm::memory::WpFault;
use mm::*;

const K64: u64 = 16 * K4;

/// Stores `data` at `a` in `p` one page per step, as the explorer drives
/// the store machine (between the halves of a COW copy the new page is
/// held by the machine, so the invariants are checked at the end).
fn store_page_by_page(k: &mut Kernel, p: Pid, a: u64, data: &Contents) -> SysResult<()> {
    let mm = k.task_mm(p).expect("p has an mm");
    let mut w = WpFault::begin(p, mm, a, data.clone());
    while k.wp_fault_step(&mut w) {}
    assert!(k.check_invariants().is_ok());
    w.result.unwrap_or(Ok(()))
}

/// `len` bytes that differ from page to page and within a page.
fn ramp(len: u64) -> Contents {
    Contents::from_bytes(&(0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>())
}

/// A 64K mTHP written by a new task (mTHP 64K `always`, everything else
/// off), in a 2M VMA.
fn with_mthp() -> (Sys, Pid, u64) {
    let mut s = Sys::new();
    s.k.settings.thp_global = ThpMode::Never;
    s.k.settings.thp_order[4] = ThpMode::Always;
    let p = s.spawn();
    let a = s.anon(p, M2);
    s.fill(p, a, K64, 0x11).unwrap();
    assert_eq!(s.info(p, a).order, 4);
    (s, p, a)
}

/// Stores `data` at `at` both ways from the same state and checks that
/// the two kernels end equal and that the bytes read back are `data`.
fn same_both_ways(s: &Sys, p: Pid, at: u64, data: &Contents) {
    let mut whole = s.k.clone();
    let mut stepped = s.k.clone();
    whole.write_mem(p, at, data).unwrap();
    assert!(whole.check_invariants().is_ok());
    store_page_by_page(&mut stepped, p, at, data).unwrap();
    assert!(whole == stepped, "a store taken in runs must end where the page-by-page store ends");
    assert_eq!(whole.read_mem(p, at, data.len()).unwrap(), *data);
}

#[test]
fn a_store_over_an_exclusive_mthp_ends_as_page_by_page() {
    let (s, p, a) = with_mthp();
    // From inside the first page, across the whole mTHP, into the next
    // (unpopulated) 64K and part of a page there.
    same_both_ways(&s, p, a + 100, &ramp(K64 + 2 * K4));
}

#[test]
fn a_store_over_a_partly_copied_mthp_after_fork_ends_as_page_by_page() {
    let (mut s, p, a) = with_mthp();
    let c = s.fork(p);
    // The child's store copies one page: the parent's PTEs still all map
    // the mTHP, read-only, until it stores.
    s.fill(c, a + 5 * K4, 10, 0x22).unwrap();
    same_both_ways(&s, p, a + K4 + 7, &ramp(K64));
    // The child's PTEs: a run of the mTHP, its own page, the mTHP again.
    same_both_ways(&s, c, a, &ramp(K64 - 3));
}

/// The same with a fill: a store of one byte value is kept as that byte
/// (`Contents::overwrite_fill`), not as a string.
#[test]
fn a_fill_over_a_partly_copied_mthp_after_fork_ends_as_page_by_page() {
    let (mut s, p, a) = with_mthp();
    let c = s.fork(p);
    s.fill(c, a + 5 * K4, 10, 0x22).unwrap();
    same_both_ways(&s, p, a + K4 + 7, &Contents::filled(K64, 0x33));
    same_both_ways(&s, c, a, &Contents::filled(K64 - 3, 0x44));
    same_both_ways(&s, c, a + 5 * K4 + 1, &Contents::filled(3, 0x55));
}

#[test]
fn a_load_across_runs_of_folios_reads_what_was_stored() {
    let (mut s, p, a) = with_mthp();
    let c = s.fork(p);
    s.fill(c, a + 5 * K4, K4, 0x22).unwrap();
    // The mTHP, the child's own page, the mTHP again, then 10 bytes of the
    // next 64K, never touched (the zero page).
    let got = s.read(c, a + 10, K64).unwrap();
    let mut want = Contents::filled(5 * K4 - 10, 0x11);
    want.append(&Contents::filled(K4, 0x22));
    want.append(&Contents::filled(K64 - 6 * K4, 0x11));
    want.append(&Contents::zeroed(10));
    assert_eq!(got, want);
}
