//! Forks a task with N populated 4 KiB anon pages (THP off) as the
//! criterion bench does, from a fresh clone of the state each time, and
//! prints the best of a few runs in ns/page with the page faults the
//! process took during each fork (fresh memory for the child's page
//! tables: what made 1M pages cost more per page than 250k, when the
//! allocator had given the previous fork's tables back to the system).
//! Small enough to run under callgrind:
//! `valgrind --tool=callgrind --toggle-collect='*Kernel*fork*' target/release/examples/fork_pages 65536 1`
//! `cargo run --release -p mm --example fork_pages [pages (1000000)] [runs (5)]`
use mm::*;

#[path = "populated/mod.rs"]
mod populated;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("a number"));
    let nr = args.next().unwrap_or(1_000_000);
    let runs = args.next().unwrap_or(5);
    let len = nr * PAGE_SIZE;
    let (k, p, _) = populated::populated(len);
    let mut best = f64::MAX;
    let mut faults = Vec::new();
    for _ in 0..runs {
        let mut k = k.clone();
        let before = minor_faults();
        let t = Instant::now();
        k.fork(p).expect("fork");
        best = best.min(t.elapsed().as_nanos() as f64 / nr as f64);
        faults.push(minor_faults().zip(before).map_or(0, |(after, before)| after - before));
    }
    println!("{nr} pages, best of {runs}: fork {best:.1} ns/page; page faults during each fork: {faults:?}");
}

/// The process's minor page faults so far (field 10 of /proc/self/stat),
/// where there is such a file.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(7)?.parse().ok()
}
