//! Swap-in as mm/memory.c: do_swap_page() does it, on both device kinds
//! (`swap=zram|file`). The outcomes asserted here were measured on this
//! machine's 6.18 kernel with a zram device and with a swap file on ext4
//! (crates/live/scenarios/swap-*.cow run them live).
mod common;
use common::*;
use mm::policy::SwapKind;
use mm::*;

fn sys(kind: &str) -> Sys {
    Sys::new().set("swap", kind)
}

/// A page written, then paged out: its swap PTE carries the exclusive marker.
fn swapped_page(s: &mut Sys, p: Pid) -> u64 {
    let a = s.anon(p, K4);
    s.fill(p, a, K4, 0x11).unwrap();
    s.step(|k| k.madvise(p, a, K4, Advice::PageOut)).unwrap();
    assert!(s.k.pagemap(p, a).unwrap().swapped);
    a
}

#[test]
fn a_read_swap_in_of_an_exclusive_entry_maps_writable_on_both_kinds() {
    for kind in ["zram", "file"] {
        let mut s = sys(kind);
        let p = s.spawn();
        let a = swapped_page(&mut s, p);
        assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
        let e = s.k.pagemap(p, a).unwrap();
        assert!(e.present && e.writable, "{kind}: exclusive swap entry → writable on a read fault");
        assert!(s.info(p, a).anon_exclusive, "{kind}");
        let pfn = s.pfn(p, a);
        s.fill(p, a, K4, 0x22).unwrap();
        assert_eq!(s.pfn(p, a), pfn, "{kind}: the write needs no fault at all");
        assert_eq!(s.copied(), 0);
    }
}

#[test]
fn a_read_only_vma_or_soft_dirty_tracking_keeps_the_pte_read_only() {
    for kind in ["zram", "file"] {
        let mut s = sys(kind);
        let p = s.spawn();
        let a = swapped_page(&mut s, p);
        s.step(|k| k.mprotect(p, a, K4, Prot::READ)).unwrap();
        assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
        assert!(!s.k.pagemap(p, a).unwrap().writable, "{kind}: no VM_WRITE");
        assert!(s.info(p, a).anon_exclusive, "{kind}: still exclusive");

        let b = swapped_page(&mut s, p);
        s.step(|k| k.clear_soft_dirty(p)).unwrap();
        assert!(s.read(p, b, K4).unwrap().is_fill(0x11));
        assert!(!s.k.pagemap(p, b).unwrap().writable, "{kind}: soft-dirty tracking wants the write fault");
        s.fill(p, b, K4, 0x33).unwrap();
        assert_eq!(s.copied(), 0, "{kind}: the write fault reuses the exclusive page");
        assert!(s.k.pagemap(p, b).unwrap().soft_dirty);
    }
}

/// The kinds differ where a swap PTE lost its exclusive marker (fork) but
/// is the slot's only user again (the child exited): zram skips the swap
/// cache with a fresh, certainly exclusive page; a swap file maps the
/// swap-cache page read-only and shared.
#[test]
fn after_fork_and_child_exit_zram_maps_exclusive_and_a_swap_file_does_not() {
    let mut s = sys("zram");
    let p = s.spawn();
    let a = swapped_page(&mut s, p);
    let c = s.fork(p);
    s.step(|k| k.exit(c)).unwrap();
    assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
    assert!(s.k.pagemap(p, a).unwrap().writable);
    assert!(s.info(p, a).anon_exclusive);
    assert_eq!(s.info(p, a).refcount, 1, "not in the swap cache");

    let mut s = sys("file");
    let p = s.spawn();
    let a = swapped_page(&mut s, p);
    let c = s.fork(p);
    s.step(|k| k.exit(c)).unwrap();
    assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
    assert!(!s.k.pagemap(p, a).unwrap().writable);
    assert!(!s.info(p, a).anon_exclusive);
    assert_eq!(s.info(p, a).refcount, 2, "the mapping and the swap cache");
    // The write fault frees the swap space (wp_can_reuse_anon_folio() →
    // folio_free_swap()) and reuses the page: no copy.
    let pfn = s.pfn(p, a);
    s.fill(p, a, K4, 0x22).unwrap();
    assert_eq!(s.pfn(p, a), pfn);
    assert_eq!(s.copied(), 0);
    assert!(s.info(p, a).anon_exclusive);
    assert_eq!(s.info(p, a).refcount, 1, "out of the swap cache");
}

/// What the difference shows as contents: a vmsplice()d page after the read
/// swap-in. On zram the page is exclusive and writable, so the later write
/// lands in the page the pipe holds; on a swap file the write fault finds a
/// foreign reference and copies, so the pipe keeps the old bytes.
#[test]
fn a_pipe_sees_the_later_write_on_zram_but_not_on_a_swap_file() {
    for (kind, pipe_sees) in [("zram", 0x22), ("file", 0x11)] {
        let mut s = sys(kind);
        let p = s.spawn();
        let a = swapped_page(&mut s, p);
        let c = s.fork(p);
        s.step(|k| k.exit(c)).unwrap();
        assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
        let (r, w) = s.step(|k| k.pipe(p)).unwrap();
        assert_eq!(s.step(|k| k.vmsplice(p, w, a, K4)).unwrap(), K4);
        s.fill(p, a, K4, 0x22).unwrap();
        assert_eq!(s.copied(), u64::from(kind == "file"), "{kind}");
        assert!(s.step(|k| k.read_fd(p, r, K4)).unwrap().is_fill(pipe_sees), "{kind}");
        assert!(s.read(p, a, K4).unwrap().is_fill(0x22));
    }
}

/// On a swap file MADV_PAGEOUT leaves the folio in the swap cache
/// (asynchronous writeback), so the swap-in maps the very same page; zram
/// frees it and the swap-in gets a new one.
#[test]
fn a_swap_file_swaps_in_the_same_page_and_zram_a_new_one() {
    for (kind, same) in [("zram", false), ("file", true)] {
        let mut s = sys(kind);
        let p = s.spawn();
        let a = s.anon(p, K4);
        s.fill(p, a, K4, 0x11).unwrap();
        let before = s.pfn(p, a);
        s.step(|k| k.madvise(p, a, K4, Advice::PageOut)).unwrap();
        assert!(s.k.pagemap(p, a).unwrap().swapped);
        assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
        assert_eq!(s.pfn(p, a) == before, same, "{kind}");
        // Paged out again: on a swap file the clean swap-cache page is freed
        // now, its slot already holds the bytes; written first, it stays.
        s.step(|k| k.madvise(p, a, K4, Advice::PageOut)).unwrap();
        assert!(s.read(p, a, K4).unwrap().is_fill(0x11));
        s.fill(p, a, K4, 0x44).unwrap();
        s.step(|k| k.madvise(p, a, K4, Advice::PageOut)).unwrap();
        assert!(s.read(p, a, K4).unwrap().is_fill(0x44));
    }
}

/// Unmapping a swap-cache page that no swap PTE needs frees it with its
/// slot (free_swap_cache()); zapping the last swap PTE of a slot whose page
/// nobody maps frees both too (free_swap_and_cache_nr()).
#[test]
fn unmapping_lets_go_of_the_swap_cache() {
    let mut s = sys("file");
    let p = s.spawn();
    let a = swapped_page(&mut s, p);
    s.step(|k| k.munmap(p, a, K4)).unwrap();
    let b = swapped_page(&mut s, p);
    assert!(s.read(p, b, K4).unwrap().is_fill(0x11));
    s.step(|k| k.munmap(p, b, K4)).unwrap();
    // The invariants (checked after every step) count every reference and
    // refuse a slot nothing refers to; nothing is left.
    assert_eq!(s.k.check_invariants(), Ok(()));
    let anon = s.k.folios.iter().filter(|(_, f)| f.kind == mm::folio::FolioKind::Anon).count();
    assert_eq!(anon, 0, "every anon folio freed");
}

#[test]
fn the_swap_knob_takes_zram_or_file() {
    let mut p = Policy::default();
    assert_eq!(p.swap, SwapKind::File, "the kind cow.c's swap cases agree with here");
    p.set("swap", "zram").unwrap();
    assert_eq!(p.swap, SwapKind::Zram);
    assert!(p.set("swap", "disk").unwrap_err().contains("file, zram"));
}
