//! The model's benchmarked work done by this machine's kernel, so that one
//! `cargo bench -p mm -p live` run gives both figures and their ratio:
//!
//! - `kernel/fork/N populated 4KiB pages`: fork(2) of a process with N
//!   populated private anon pages (THP off for the range, MADV_NOHUGEPAGE),
//!   the time until fork returns in the parent; the child exits at once and
//!   is reaped outside the measurement. The process's own other mappings
//!   (the benchmark harness) are copied too: a few hundred pages.
//! - `kernel/pin/1GiB of 4KiB anon pages`: IORING_REGISTER_BUFFERS of one
//!   1 GiB buffer of populated 4 KiB pages: the kernel pins them with
//!   `pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)` (io_uring/rsrc.c),
//!   unregistered outside the measurement. That is the slow path of GUP
//!   with a long-term pin, which the model's `pin_user_pages_fast` bench
//!   mirrors for populated exclusive pages (both end up grabbing each page).
//!
//! Nothing here changes a host setting. The model side is in
//! `crates/mm/benches/mm.rs`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;

/// `len` bytes of private anon memory, 4 KiB pages, every page written.
fn populated(len: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; only this benchmark uses it.
    unsafe {
        let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        assert_ne!(p, libc::MAP_FAILED, "mmap of {len} bytes");
        assert_eq!(libc::madvise(p, len, libc::MADV_NOHUGEPAGE), 0);
        std::ptr::write_bytes(p as *mut u8, 1, len);
        p as *mut u8
    }
}

fn unmap(p: *mut u8, len: usize) {
    // SAFETY: `p` came from `populated(len)` and is not used afterwards.
    unsafe { libc::munmap(p as *mut libc::c_void, len) };
}

fn fork(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel/fork");
    g.sample_size(10);
    for pages in [250_000usize, 500_000, 1_000_000] {
        let p = populated(pages * PAGE);
        g.throughput(Throughput::Elements(pages as u64));
        g.bench_function(format!("{pages} populated 4KiB pages"), |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    // SAFETY: the child only calls _exit.
                    let pid = unsafe { libc::fork() };
                    if pid == 0 {
                        unsafe { libc::_exit(0) };
                    }
                    took += t0.elapsed();
                    assert!(pid > 0, "fork failed");
                    let mut status = 0;
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                }
                took
            })
        });
        unmap(p, pages * PAGE);
    }
    g.finish();
}

fn pin(c: &mut Criterion) {
    const LEN: usize = 1 << 30;
    let mut g = c.benchmark_group("kernel/pin");
    g.sample_size(10);
    g.throughput(Throughput::Elements((LEN / PAGE) as u64));
    let p = populated(LEN);
    let ring = io_uring::IoUring::new(4).expect("io_uring_setup");
    let iov = [libc::iovec { iov_base: p as *mut libc::c_void, iov_len: LEN }];
    g.bench_function("1GiB of 4KiB anon pages (io_uring register_buffers)", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                // SAFETY: the buffer stays mapped until it is unregistered below.
                unsafe { ring.submitter().register_buffers(&iov) }.expect("IORING_REGISTER_BUFFERS");
                took += t0.elapsed();
                ring.submitter().unregister_buffers().expect("IORING_UNREGISTER_BUFFERS");
            }
            took
        })
    });
    g.finish();
    drop(ring);
    unmap(p, LEN);
}

criterion_group!(benches, fork, pin);
criterion_main!(benches);
