//! Maps 1 TiB of anonymous memory with overcommit always and writes it
//! (the issue 16 scenario): the writes fill the machine's RAM (4 GiB by
//! default) and the OOM killer ends the task. Prints the outcome, the time
//! and the process's peak memory (VmHWM), which must follow the RAM the
//! model fills, not the size mapped.
//! `cargo run --release -p mm --example fill_1t_oom`
use mm::kernel::Overcommit;
use mm::*;

fn main() {
    let t0 = std::time::Instant::now();
    let mut k = Kernel::new(Policy::default());
    k.set_event_log(false);
    k.machine.overcommit = Overcommit::Always;
    let p = k.spawn();
    let len = 1u64 << 40;
    let a = k.mmap(p, MmapRequest::anon(len)).expect("mmap");
    let r = k.write_mem(p, a, &Contents::filled(len, 1));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    println!(
        "write of 1 TiB with {} MiB of RAM: {r:?}, task {:?}, {:.2} s, {hwm}",
        k.machine.ram >> 20,
        k.task_state(p),
        t0.elapsed().as_secs_f64()
    );
}
