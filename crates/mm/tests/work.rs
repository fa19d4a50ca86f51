//! The work counter a progress display reads (mm::work): it grows while a
//! long operation runs, by the pages each leaf step finishes, and is not
//! part of the state.

mod common;

use common::{Sys, K4};
use mm::memory::WpFault;
use mm::*;

/// A store to 64 pages, run one step of its machine at a time: the count
/// grows page by page as the store goes, not at its end, and ends 64
/// pages up (faults count nothing by themselves: the store after each one
/// does).
#[test]
fn the_count_grows_while_a_store_runs() {
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, 64 * K4);
    let work = s.k.work_counter();
    let mm = s.k.task_mm(p).unwrap();
    let mut w = WpFault::begin(p, mm, a, Contents::filled(64 * K4, 7));
    let mut seen = vec![work.get()];
    while s.step(|k| k.wp_fault_step(&mut w)) {
        seen.push(work.get());
    }
    seen.push(work.get());
    assert_eq!(w.result, Some(Ok(())));
    assert!(seen.windows(2).all(|x| x[0] <= x[1]), "{seen:?}");
    assert_eq!(seen.last().unwrap() - seen[0], 64);
    // Every page's store step shows on its own.
    let distinct: std::collections::BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), 65, "{seen:?}");
}

/// Fork's copy, munmap's zap, a pin and a pageout each count the pages
/// they go over; the counter is shared by the kernel's clones and leaves
/// equality and hashing alone.
#[test]
fn fork_zap_pin_and_pageout_count_their_pages() {
    use std::hash::{BuildHasher, RandomState};
    let mut s = Sys::new();
    let p = s.spawn();
    let a = s.anon(p, 32 * K4);
    s.fill(p, a, 32 * K4, 1).unwrap();
    let work = s.k.work_counter();
    let before = s.k.clone();
    let delta = |s: &mut Sys, f: &mut dyn FnMut(&mut Kernel)| {
        let n = work.get();
        s.step(|k| f(k));
        work.get() - n
    };
    assert_eq!(delta(&mut s, &mut |k| k.madvise(p, a, 32 * K4, Advice::PageOut).unwrap()), 32, "pageout");
    // The copy goes over the 32 swap entries.
    assert_eq!(
        delta(&mut s, &mut |k| {
            k.fork(p).unwrap();
        }),
        32,
        "fork"
    );
    assert_eq!(
        delta(&mut s, &mut |k| {
            let h = k.gup(p, a, 8, GupFlags::PIN, false).unwrap();
            k.unpin(p, h).unwrap()
        }),
        8,
        "pin"
    );
    assert_eq!(delta(&mut s, &mut |k| k.munmap(p, a, 16 * K4).unwrap()), 16, "zap");
    assert_eq!(before.work_counter().get(), work.get(), "clones share the count");
    let after_fill = {
        let mut k = Kernel::new(Policy::default());
        let q = k.spawn();
        let b = k.mmap(q, MmapRequest::anon(32 * K4)).unwrap();
        k.write_mem(q, b, &Contents::filled(32 * K4, 1)).unwrap();
        k
    };
    let fresh = {
        let mut k = after_fill.clone();
        k.work_counter().add(1_000);
        k.spawn();
        k
    };
    let mut again = after_fill.clone();
    again.spawn();
    assert_eq!(fresh, again, "equal whatever the count");
    let h = RandomState::new();
    assert_eq!(h.hash_one(&fresh), h.hash_one(&again));
}
