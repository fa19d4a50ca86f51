//! The hugetlb selftests (hugetlb-madvise, map_hugetlb, hugepage-mmap,
//! hugepage-mremap, hugepage-shm, hugetlb_fault_after_madv) on this
//! machine's kernel and on the model: the same outcome on every test the
//! kernel decides (a test the kernel skips decides nothing). The live
//! backend sets each test's hugetlb pool and puts it back; segments a test
//! leaves are removed. `harness = false` (the zygote is this binary); the
//! host is touched only with `COWLAB_LIVE_TESTS=1`.

use live::{LiveBackend, LiveOptions};
use scenario::RunOptions;
use suites::{Config, Outcome, Suite};

const SUITES: [Suite; 6] = Suite::HUGETLB;

fn main() {
    live::enter_if_zygote();
    if let Some(skip) = live::live_tests_skip() {
        println!("{skip}");
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let opts = RunOptions::default();
    for suite in SUITES {
        if !filter.is_empty() && !filter.iter().any(|x| suite.name().contains(x.as_str())) {
            continue;
        }
        for t in suites::generate(suite, &Config::this_machine()) {
            println!("test {} {} {} ...", suite.name(), t.number, t.description);
            let mut be = match LiveBackend::new(LiveOptions::default()) {
                Ok(b) => b,
                Err(e) => {
                    println!("skip: {e}");
                    return;
                }
            };
            let (kernel, report) = suites::run(&t, &mut be, &opts).expect("the test runs on the kernel");
            drop(be);
            let (model, _) = suites::run(&t, &mut scenario::model::ModelBackend::new(), &opts).expect("the test runs on the model");
            if kernel.outcome == Outcome::Skip {
                println!("  the kernel skipped it here: {:?}", kernel.messages);
                continue;
            }
            assert_eq!(
                (model.outcome, &model.messages),
                (kernel.outcome, &kernel.messages),
                "{} {}: model and kernel differ\n{}",
                suite.name(),
                t.description,
                report.render(false)
            );
            println!("test {} {} ... ok ({})", suite.name(), t.number, kernel.outcome);
        }
    }
}
