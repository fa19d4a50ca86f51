//! Benchmarks of the model's hot paths (issue targets in the README):
//! pin_user_pages_fast over 1 GiB of populated 4 KiB anon pages, fork of a
//! process with many populated 4 KiB pages, and writing 1 GiB of anon memory.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mm::*;

const GIB: u64 = 1 << 30;

/// A task with `len` bytes of populated 4 KiB anon pages (THP off).
fn populated(len: u64) -> (Kernel, Pid, u64) {
    let mut k = Kernel::new(Policy::default());
    k.set_event_log(false);
    k.settings.thp_global = ThpMode::Never;
    let p = k.spawn();
    let a = k.mmap(p, MmapRequest::anon(len)).unwrap();
    k.write_mem(p, a, &Data::Fill { byte: 1, len }).unwrap();
    (k, p, a)
}

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

criterion_group!(benches, pin_fast, fork, write_fill);
criterion_main!(benches);
