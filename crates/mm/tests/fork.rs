//! fork run to completion (`Kernel::fork`, which copies runs of anon,
//! zero-page, page-cache and swap PTEs a table at a time) leaves exactly the state that stepping through
//! the fork one entry at a time (`fork_begin` + `fork_step`, what the race
//! explorer does) leaves, on an address space with every kind of entry
//! fork treats apart.

mod common;
use common::*;
use mm::*;

/// A process whose VMAs hold, between runs of plain anon pages that cross
/// PTE tables: holes, zero-page entries, a long-term pinned page (copied at
/// fork), a swapped-out page, a 64K mTHP, a PMD THP, a 2 MiB hugetlb page,
/// a shared anon mapping, a private file mapping with page-cache pages and
/// COW copies, and a MADV_DONTFORK range.
fn mixed(policy: Policy) -> (Sys, Pid) {
    let mut s = Sys::with(policy);
    s.hugetlb_pool(HugeSize::Size2M, 2);
    let p = s.spawn();
    // 3 MiB of small anon pages: written in runs, with holes and zero pages.
    s.thp_disable();
    let a = s.anon(p, 3 * M2 / 2);
    s.fill(p, a, 300 * K4, 1).unwrap();
    s.read(p, a + 300 * K4, 4 * K4).unwrap();
    s.fill(p, a + 310 * K4, 400 * K4, 2).unwrap();
    s.pin(p, a + 520 * K4, 1, rw_longterm(), true).unwrap();
    s.step(|k| k.madvise(p, a + 600 * K4, K4, Advice::PageOut)).unwrap();
    // A 64K mTHP and a PMD THP.
    s.k.settings.thp_order[4] = ThpMode::Always;
    let m = s.anon(p, M2);
    s.fill(p, m, 16 * K4, 3).unwrap();
    s.k.settings.thp_order[4] = ThpMode::Never;
    s.thp_enable_pmd();
    let t = s.thp_area(p, M2);
    s.fill(p, t, M2, 4).unwrap();
    s.thp_disable();
    s.huge(p, M2, HugeSize::Size2M).and_then(|h| s.fill(p, h, M2, 5)).unwrap();
    let sh = s.mmap(p, MmapRequest { shared: true, ..MmapRequest::anon(8 * K4) });
    s.fill(p, sh, 8 * K4, 6).unwrap();
    // A private file mapping: page-cache pages read, between COW copies.
    let f = s.step(|k| k.create_file(p, InodeKind::Shmem, None)).unwrap();
    s.step(|k| k.fallocate(p, f, 0, 8 * K4)).unwrap();
    let pf = s.mmap(p, MmapRequest { fd: Some(f), ..MmapRequest::anon(8 * K4) });
    s.read(p, pf, 8 * K4).unwrap();
    s.fill(p, pf + 2 * K4, 2 * K4, 8).unwrap();
    let d = s.anon(p, 8 * K4);
    s.fill(p, d, 8 * K4, 7).unwrap();
    s.step(|k| k.madvise(p, d, 8 * K4, Advice::DontFork)).unwrap();
    (s, p)
}

#[test]
fn fork_to_completion_equals_stepping() {
    for name in ["linux-6.18", "linux-5.8"] {
        let policy = Policy::profile(name).expect("a built-in profile");
        let (mut whole, p) = mixed(policy);
        let mut stepped = Sys { k: whole.k.clone() };
        let copied_before = whole.copied();
        let child = whole.fork(p);
        let mut f = stepped.k.fork_begin(p).unwrap();
        let mut steps = 0;
        while stepped.k.fork_step(&mut f) {
            steps += 1;
        }
        assert_eq!(f.result, Some(Ok(child)), "{name}");
        assert!(steps > 1000, "{name}: the fork went entry by entry ({steps} steps)");
        // 5.9 on copies the pinned page at fork; 5.8 shares it.
        assert_eq!(whole.copied() > copied_before, name == "linux-6.18", "{name}");
        assert_eq!(whole.k, stepped.k, "{name}");
        stepped.step(|k| k.check_invariants()).unwrap();
    }
}

/// A zero page or page-cache page is shared with the child as it is, but
/// the child's entry is old (`__copy_present_ptes()`: `pte_mkold()` for
/// every copied present PTE), whether fork runs whole or step by step; the
/// parent's keeps its accessed bit. Each VMA also holds an anon page, or
/// fork would not copy its entries at all (`vma_needs_copy()`).
#[test]
fn shared_leaves_are_old_in_the_child() {
    for whole in [true, false] {
        let mut s = Sys::new();
        let p = s.spawn();
        s.thp_disable();
        let z = s.anon(p, 2 * K4);
        s.fill(p, z, K4, 1).unwrap();
        s.read(p, z + K4, K4).unwrap();
        let f = s.step(|k| k.create_file(p, InodeKind::Shmem, None)).unwrap();
        s.step(|k| k.fallocate(p, f, 0, 2 * K4)).unwrap();
        let m = s.mmap(p, MmapRequest { fd: Some(f), ..MmapRequest::anon(2 * K4) });
        s.read(p, m, K4).unwrap();
        s.fill(p, m + K4, K4, 2).unwrap();
        let c = if whole {
            s.fork(p)
        } else {
            let mut f = s.k.fork_begin(p).unwrap();
            while s.k.fork_step(&mut f) {}
            f.result.expect("done").expect("forked")
        };
        let young = |s: &Sys, pid: Pid, a: u64| match s.k.mm(s.k.task_mm(pid).unwrap()).pt.get(mm::pgtable::Level::Pte, a) {
            Some(mm::pgtable::Entry::Present(e)) => e.young,
            other => panic!("no present PTE at {a:#x} in {pid:?}: {other:?}"),
        };
        for a in [z + K4, m] {
            assert!(young(&s, p, a), "whole={whole}: the parent's entry at {a:#x} stays young");
            assert!(!young(&s, c, a), "whole={whole}: the child's entry at {a:#x} is old");
        }
    }
}
