//! The workload suite: every workload parses, checks and runs on the model
//! with the invariants checked after every step, under the policies the
//! thread argued about, and the outcomes that separate those policies are
//! the ones each workload states.

use scenario::model::ModelBackend;
use scenario::RunOptions;
use suites::workloads::{generate, Judgement, Workload};

fn run(w: &Workload, knobs: &[(&str, &str)]) -> (Judgement, mm::events::Stats) {
    let l = scenario::load(&w.file_name(), &w.scenario)
        .unwrap_or_else(|(src, ds)| panic!("{}: {}", w.name, ds.iter().map(|d| d.render(&src)).collect::<String>()));
    let opts = RunOptions { knobs: knobs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() };
    let mut be = ModelBackend::new();
    let r = scenario::run_loaded(&l, &mut be, &opts).expect("knobs are valid");
    (w.judge(&r), be.kernel().stats)
}

fn one(name: &str) -> Workload {
    generate().into_iter().find(|w| w.name == name).unwrap_or_else(|| panic!("no workload {name}"))
}

const MAPCOUNT: &[(&str, &str)] = &[("hugetlb_reuse", "mapcount")];
const REFCOUNT: &[(&str, &str)] = &[("hugetlb_reuse", "refcount")];
const NAIVE: &[(&str, &str)] = &[("hugetlb_reuse", "refcount_naive")];
const NAIVE_SIGBUS: &[(&str, &str)] = &[("hugetlb_reuse", "refcount_naive"), ("hugetlb_cow_fail", "sigbus")];
const PIN: &[(&str, &str)] = &[("vmsplice", "pin")];

#[test]
fn every_workload_states_its_harms_and_runs_with_invariants_under_every_rule() {
    let all = generate();
    assert!(all.len() >= 60, "{}", all.len());
    for w in &all {
        assert!(w.scenario.contains("# leak: ") && w.scenario.contains("# lost pin: "), "{}", w.name);
        for knobs in [MAPCOUNT, REFCOUNT, NAIVE, NAIVE_SIGBUS, PIN] {
            let (j, _) = run(w, knobs);
            assert!(j.unexplained.is_empty(), "{} under {knobs:?}: {:?}", w.name, j.unexplained);
        }
    }
}

#[test]
fn small_pages_and_thp_never_leak_or_lose_pins() {
    for w in generate().iter().filter(|w| !w.name.contains("hugetlb")) {
        for knobs in [MAPCOUNT, NAIVE, PIN] {
            let (j, s) = run(w, knobs);
            assert_eq!((j.leaks, j.lost_pins, s.sigbus, s.livelocks), (0, 0, 0, 0), "{} under {knobs:?}", w.name);
        }
    }
}

#[test]
fn hugetlb_vmsplice_producer_leaks_by_mapcount_not_by_refcount_or_pin() {
    let w = one("vmsplice-producer backing=hugetlb-spare producer=munmap");
    assert_eq!(run(&w, MAPCOUNT).0.leaks, 1);
    assert_eq!(run(&w, REFCOUNT).0.leaks, 0);
    let (j, s) = run(&w, PIN);
    assert_eq!(j.leaks, 0);
    assert_eq!(s.unshare_copies, 1, "the pin unshares at vmsplice time");
}

#[test]
fn late_teardown_makes_the_exited_child_a_victim() {
    // Prompt teardown: the child's exit leaves the page mapped once; the
    // server reuses it. Late: the exited child still maps it, the pool is
    // full, the owner steals it from the dead child's mm.
    let prompt = one("fork-exit-server backing=hugetlb-exact exit=before teardown=prompt");
    let late = one("fork-exit-server backing=hugetlb-exact exit=before teardown=late");
    let (j, s) = run(&prompt, MAPCOUNT);
    assert_eq!((j.failed_ops, s.stolen, s.copied_2m), (0, 0, 0));
    let (j, s) = run(&late, MAPCOUNT);
    assert_eq!((j.failed_ops, s.stolen, s.sigbus), (0, 1, 0));
    // With SIGBUS instead of stealing, the server dies for a child already gone.
    let (j, s) = run(&late, &[("hugetlb_cow_fail", "sigbus")]);
    assert_eq!((s.sigbus, s.stolen), (1, 0));
    assert!(j.failed_ops >= 1);
}

#[test]
fn the_naive_refcount_rule_cannot_reuse_a_mapped_huge_page() {
    // Spare pool: the write after the child's exit copies instead of reusing.
    let w = one("fork-exit-server backing=hugetlb-spare exit=before teardown=prompt");
    let (_, s) = run(&w, MAPCOUNT);
    assert_eq!((s.copied_2m, s.hugetlb_reuses_mapped), (0, 1));
    let (_, s) = run(&w, NAIVE);
    assert_eq!((s.copied_2m, s.hugetlb_reuses_mapped), (1, 0));
    // Exact pool: no page for the copy, nobody to steal from → livelock, or
    // SIGBUS for the server.
    let w = one("fork-exit-server backing=hugetlb-exact exit=before teardown=prompt");
    let (_, s) = run(&w, NAIVE);
    assert_eq!((s.livelocks, s.sigbus), (1, 0));
    let (_, s) = run(&w, NAIVE_SIGBUS);
    assert_eq!((s.livelocks, s.sigbus), (0, 1));
}

#[test]
fn io_uring_pins_across_fork_stay_coherent_and_an_exact_pool_refuses_the_fork() {
    for w in generate().iter().filter(|w| w.family == "io-uring-fixed-buffer") {
        let (j, _) = run(w, MAPCOUNT);
        assert_eq!((j.leaks, j.lost_pins), (0, 0), "{}", w.name);
        // fork must copy the pinned huge page for the child: no page, ENOMEM.
        assert_eq!(j.failed_ops > 0, w.name.contains("hugetlb-exact"), "{}", w.name);
    }
}
