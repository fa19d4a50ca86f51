//! Writes 1 GiB of 4 KiB anon pages with one fill byte and prints the
//! process's peak memory (VmHWM): the model must stay far below the memory
//! it models. `cargo run --release -p mm --example fill_1g`
use mm::*;

fn main() {
    let mut k = Kernel::new(Policy::default());
    k.set_event_log(false);
    k.settings.thp_global = ThpMode::Never;
    let p = k.spawn();
    let len = 1u64 << 30;
    let a = k.mmap(p, MmapRequest::anon(len)).expect("mmap");
    k.write_mem(p, a, &Contents::filled(len, 1)).expect("write");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    println!("1 GiB of 4 KiB pages written; folio {} B, {hwm}", std::mem::size_of::<mm::folio::Folio>());
}
