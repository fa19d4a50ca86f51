//! Pins populated 4 KiB anon pages with `pin_user_pages_fast`
//! (FOLL_WRITE|FOLL_LONGTERM, as the criterion bench does) and unpins them,
//! printing the best of a few runs in ns/page for each. Small enough to run
//! under callgrind, where the instruction count per page does not depend
//! on the machine's load:
//! `valgrind --tool=callgrind --toggle-collect='*Kernel*gup*' target/release/examples/pin_1g 64 1`
//! `cargo run --release -p mm --example pin_1g [MiB (1024)] [runs (5)]`
use mm::*;

#[path = "populated/mod.rs"]
mod populated;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("a number"));
    let mib = args.next().unwrap_or(1024);
    let runs = args.next().unwrap_or(5);
    let len = mib << 20;
    let (k, p, a) = populated::populated(len);
    let nr = len / PAGE_SIZE;
    let (mut pin, mut unpin) = (f64::MAX, f64::MAX);
    for _ in 0..runs {
        let mut k = k.clone();
        let t = Instant::now();
        let h = k.gup(p, a, nr, GupFlags::PIN.with_write().with_longterm(), true).expect("pin");
        pin = pin.min(t.elapsed().as_nanos() as f64 / nr as f64);
        let t = Instant::now();
        k.unpin(p, h).expect("unpin");
        unpin = unpin.min(t.elapsed().as_nanos() as f64 / nr as f64);
    }
    println!("{mib} MiB = {nr} pages, best of {runs}: pin_user_pages_fast {pin:.1} ns/page, unpin_user_pages {unpin:.1} ns/page");
}
