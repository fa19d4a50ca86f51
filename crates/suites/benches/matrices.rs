//! Both selftest matrices (cow, gup_longterm) on the model, one test after
//! another on one core, the way `cowlab selftest` runs each of them (no
//! narration, no invariant check); `cowlab selftest` spreads the same work
//! over every core.

use criterion::{criterion_group, criterion_main, Criterion};
use scenario::model::ModelBackend;
use scenario::RunOptions;
use suites::{Config, Suite};

fn matrices(c: &mut Criterion) {
    let cfg = Config::this_machine();
    let mut g = c.benchmark_group("selftest");
    g.sample_size(10);
    for suite in Suite::ALL {
        let tests = suites::generate(suite, &cfg);
        g.bench_function(format!("{} ({} tests, one core)", suite.name(), tests.len()), |b| {
            b.iter(|| {
                for t in &tests {
                    let mut be = ModelBackend::new().with_self_check(false).with_trace(false);
                    suites::run(t, &mut be, &RunOptions::default()).expect("every generated test runs");
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, matrices);
criterion_main!(benches);
