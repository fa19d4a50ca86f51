//! `cowlab fuzz --cases N --seed S`: random scenarios on the model and on
//! the live kernel; each undocumented divergence shrunk to a minimal
//! scenario file.
use super::{EXIT_FAIL, EXIT_OK};
use differential::fuzz::{self, Options};
use live::LiveOptions;
use std::path::PathBuf;
use std::time::Duration;

/// Generate random scenarios (anon, THP, 2M hugetlb, memfd and tmpfile
/// mappings, fork, vmsplice, io_uring fixed buffers, mprotect, madvise,
/// munmap, mremap, reads and writes, swap-out, process_vm_readv/writev,
/// O_DIRECT), run each on the model and on this
/// machine's kernel, and shrink every divergence that docs/divergences.md
/// does not explain to a minimal scenario, written to --out (exit 0: none
/// found that every rerun shows, 1: some, 2: usage). Needs root and a hugetlb pool the kernel can
/// fill; without them it prints one `SKIP:` line and exits 0.
#[derive(clap::Args)]
pub struct Args {
    /// How many random scenarios to run.
    #[arg(long, default_value_t = 100)]
    cases: u32,
    /// Seed of the generator: the same seed gives the same scenarios.
    /// Default: from the clock (printed, so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory for the minimal scenarios of findings.
    #[arg(long, value_name = "DIR", default_value = "fuzz-findings")]
    out: PathBuf,
    /// Runs spent shrinking one finding.
    #[arg(long, default_value_t = 400)]
    max_shrink_iters: u32,
    /// Seconds a single step may take on the live kernel.
    #[arg(long, default_value_t = 10)]
    step_timeout: u64,
}

pub fn main(a: Args) -> u8 {
    let seed =
        a.seed.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    let live = LiveOptions { step_timeout: Duration::from_secs(a.step_timeout.max(1)), ..LiveOptions::default() };
    if let Err(why) = fuzz::preflight(&live) {
        outln!("SKIP: cowlab fuzz: {why}");
        return EXIT_OK;
    }
    outln!("fuzz: {} cases, seed {seed}", a.cases);
    let o = Options { cases: a.cases, seed, out_dir: a.out, max_shrink_iters: a.max_shrink_iters, reruns: 3, live };
    let s = fuzz::campaign(&o, |l| outln!("{l}"));
    for (why, n) in &s.reasons {
        outln!("fuzz: {n}× {why}");
    }
    for f in &s.findings {
        let at = match &f.path {
            Ok(p) => p.display().to_string(),
            Err(e) => e.clone(),
        };
        let what = if f.is_stable() { "finding" } else { "unstable (not counted)" };
        outln!("fuzz: {what} (case {}, shown again in {}/{} reruns): {} — {at}", f.case, f.reproduced, f.reruns, f.signature);
    }
    let stable = s.findings.iter().filter(|f| f.is_stable()).count();
    outln!(
        "fuzz: seed {seed}: {} cases in {:.1} s: {} agree, {} diverge only as documented, {} undocumented ({} distinct: {stable} stable, {} unstable), {} skipped, {} inconclusive",
        s.cases,
        s.elapsed.as_secs_f64(),
        s.agreed,
        s.documented,
        s.findings.len() as u32 + s.repeats,
        s.findings.len(),
        s.findings.len() - stable,
        s.skipped,
        s.inconclusive
    );
    if stable == 0 {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}
