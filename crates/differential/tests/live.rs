//! Differential tests on the live kernel. `harness = false`: the live
//! backend's zygote is this binary re-executed, so `main` must hand over
//! to it before anything else. Tests run one after another (the live
//! backend takes a machine-wide lock anyway). They touch the host kernel
//! only with `COWLAB_LIVE_TESTS=1`; without it, or without root, the
//! binary prints one line and passes.

use live::{LiveBackend, LiveOptions};

fn backend() -> Option<LiveBackend> {
    match LiveBackend::new(LiveOptions::default()) {
        Ok(b) => Some(b),
        Err(e) => {
            println!("skip: {e}");
            None
        }
    }
}

/// The scenario docs/divergences.md §2 was found with, now that the model
/// computes pagemap's exclusive bit of a PMD-mapped THP from the PMD's
/// first page as the kernel does: model and kernel agree on every step.
fn thp_exclusive_bit_of_section_2_agrees() {
    let Some(mut be) = backend() else { return };
    let text = "thp 2M always\ntask P\nP: A = mmap 2M private anon align=2M\nP: write A fill 0x11\nP: fork C\n\
        C: write A bytes 01\nP: read A 4K expect fill 0x11\n";
    let l = scenario::load("thp.cow", text).map_err(|(_, d)| format!("{d:?}")).expect("scenario parses");
    let mut model = scenario::model::ModelBackend::new();
    let r = differential::diff::diff_loaded(&l, &mut model, &mut be);
    assert!(r.skipped.is_none(), "{}", r.render());
    assert!(r.divergences.is_empty(), "§2 is back: {}", r.render());
}

/// A short campaign end to end: preflight, cases on both backends, the
/// summary adds up. Findings are not asserted on (they are the model's
/// news, reported by `cowlab fuzz`).
fn fuzz_campaign_runs() {
    let live = LiveOptions::default();
    if let Err(why) = differential::fuzz::preflight(&live) {
        println!("skip: {why}");
        return;
    }
    let out = std::env::temp_dir().join(format!("cowlab-fuzz-test-{}", std::process::id()));
    let o = differential::fuzz::Options { cases: 8, seed: 11, out_dir: out.clone(), max_shrink_iters: 20, reruns: 1, live };
    let s = differential::fuzz::campaign(&o, |l| println!("{l}"));
    assert_eq!(s.cases, 8);
    let found = s.findings.len() as u32 + s.repeats;
    assert_eq!(s.agreed + s.documented + s.skipped + s.inconclusive + found, 8, "{s:?}");
    let _ = std::fs::remove_dir_all(out);
}

fn main() {
    live::enter_if_zygote();
    if let Some(skip) = live::live_tests_skip() {
        println!("{skip}");
        return;
    }
    let tests: &[(&str, fn())] =
        &[("thp_exclusive_bit_of_section_2_agrees", thp_exclusive_bit_of_section_2_agrees), ("fuzz_campaign_runs", fuzz_campaign_runs)];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        println!("test {name} ...");
        f();
        println!("test {name} ... ok");
    }
}
