//! The workload suite: every workload parses, checks and runs on the model
//! with the invariants checked after every step, and the outcomes that
//! separate the policies are the ones the thread argued about.

use scenario::model::ModelBackend;
use scenario::RunOptions;
use suites::workloads::{generate, Judgement, Workload};

fn run(w: &Workload, knobs: &[(&str, &str)]) -> (Judgement, mm::events::Stats) {
    let l = scenario::load(&w.file_name(), &w.scenario)
        .unwrap_or_else(|(src, ds)| panic!("{}: {}", w.name, ds.iter().map(|d| d.render(&src)).collect::<String>()));
    let opts = RunOptions { profile: None, knobs: knobs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
    let mut be = ModelBackend::new();
    let r = scenario::run_loaded(&l, &mut be, &opts).expect("knobs are valid");
    (w.judge(&r), be.kernel().stats)
}

#[test]
fn dump() {
    for w in generate() {
        for knobs in [vec![("hugetlb_reuse", "mapcount")], vec![("hugetlb_reuse", "refcount_naive")]] {
            let (j, s) = run(&w, &knobs);
            println!(
                "{:70} {:?} leaks {} lost {} failed {} unexpl {:?} sigbus {} stolen {} live {}",
                w.name, knobs[0].1, j.leaks, j.lost_pins, j.failed_ops, j.unexplained, s.sigbus, s.stolen, s.livelocks
            );
        }
    }
}
