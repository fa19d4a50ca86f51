//! Benchmarks of the model's hot paths (issue targets in the README):
//! pin_user_pages_fast over 1 GiB of populated 4 KiB anon pages, fork of a
//! process with many populated 4 KiB pages, writing 1 GiB of anon memory, and
//! a 1 GiB hugetlb page mapped, filled, forked and COWed, and cloning and
//! hashing a small two-process state (what the race explorer does per
//! state). The same work on the live kernel, for the ratio, is in
//! `crates/live/benches/kernel.rs`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mm::*;

#[path = "../examples/populated/mod.rs"]
mod populated;
use populated::populated;

const GIB: u64 = 1 << 30;

fn pin_fast(c: &mut Criterion) {
    let mut g = c.benchmark_group("pin_user_pages_fast");
    g.sample_size(10);
    let (k, p, a) = populated(GIB);
    let nr = GIB / PAGE_SIZE;
    g.throughput(Throughput::Elements(nr));
    g.bench_function("1GiB of 4KiB anon pages", |b| {
        b.iter_batched_ref(
            || k.clone(),
            |k| k.gup(p, a, nr, GupFlags::PIN.with_write().with_longterm(), true).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn fork(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork");
    g.sample_size(10);
    for pages in [250_000u64, 500_000, 1_000_000] {
        let (k, p, _) = populated(pages * PAGE_SIZE);
        g.throughput(Throughput::Elements(pages));
        g.bench_function(format!("{pages} populated 4KiB pages"), |b| {
            b.iter_batched_ref(|| k.clone(), |k| k.fork(p).unwrap(), BatchSize::LargeInput)
        });
    }
    g.finish();
}

fn write_fill(c: &mut Criterion) {
    let mut g = c.benchmark_group("write");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(GIB));
    g.bench_function("1GiB anon fill, 4KiB pages", |b| b.iter(|| populated(GIB)));
    g.finish();
}

/// Map, fill, fork and COW one 1 GiB hugetlb page (issue target: < 10 ms).
fn hugetlb_1g_cow(c: &mut Criterion) {
    c.bench_function("hugetlb/map+fill+fork+COW of a 1GiB page", |b| {
        b.iter(|| {
            let mut k = Kernel::new(Policy::default());
            k.set_event_log(false);
            k.set_nr_hugepages(HugeSize::Size1G, 2);
            let p = k.spawn();
            let a = k.mmap(p, MmapRequest { hugetlb: Some(HugeSize::Size1G), ..MmapRequest::anon(GIB) }).unwrap();
            k.write_mem(p, a, &Contents::filled(GIB, 1)).unwrap();
            let c = k.fork(p).unwrap();
            k.write_mem(c, a, &Contents::filled(1, 2)).unwrap();
            k
        })
    });
}

/// Clone and hash a state of two processes sharing 1,000 populated 4 KiB
/// pages after a fork (the explorer branches and deduplicates states so).
fn clone_hash(c: &mut Criterion) {
    use std::hash::{Hash, Hasher};
    let (mut k, p, _) = populated(1000 * PAGE_SIZE);
    k.fork(p).unwrap();
    c.bench_function("state/clone+hash of 1,000 pages in 2 processes", |b| {
        b.iter(|| {
            let s = k.clone();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            (s, h.finish())
        })
    });
}

criterion_group!(benches, pin_fast, fork, write_fill, hugetlb_1g_cow, clone_hash);
criterion_main!(benches);
