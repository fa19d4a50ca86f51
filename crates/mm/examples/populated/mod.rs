//! The state the per-page benchmarks and examples start from, in one
//! place: a task with `len` bytes of populated 4 KiB anon pages (THP off,
//! no event log). Included by path (`#[path]`), since examples and benches
//! are separate crates; cargo builds no example from a directory without a
//! `main.rs`.
use mm::*;

pub fn populated(len: u64) -> (Kernel, Pid, u64) {
    let mut k = Kernel::new(Policy::default());
    k.set_event_log(false);
    k.settings.thp_global = ThpMode::Never;
    let p = k.spawn();
    let a = k.mmap(p, MmapRequest::anon(len)).expect("mmap");
    k.write_mem(p, a, &Contents::filled(len, 1)).expect("write");
    (k, p, a)
}
