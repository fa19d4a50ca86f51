//! A backend that cannot do everything (like the live kernel will be):
//! scenarios needing a missing operation are skipped with a reason, and
//! expectations it cannot observe are skipped with a note — never passed.

use scenario::backend::*;
use scenario::model::ModelBackend;
use scenario::report::{Entry, Status};
use scenario::RunOptions;

/// The model, minus GUP, folio counters, PageAnonExclusive, PTE bits and
/// knobs: roughly what an unprivileged live backend can do.
struct Limited(ModelBackend);

impl Backend for Limited {
    fn name(&self) -> &str {
        "limited"
    }
    fn lacks(&self, f: Feature) -> Option<String> {
        match f {
            Feature::Gup | Feature::FolioCounters | Feature::AnonExclusive | Feature::PteWritable | Feature::Knobs => {
                Some("not observable from user space".into())
            }
            other => self.0.lacks(other),
        }
    }
    /// Its CPU has no protection keys, like a live host without them: a
    /// scenario that wants them is for another machine.
    fn configure(&mut self, profile: &str, knobs: &[(String, String)]) -> Result<(), ConfigError> {
        if let Some(index) = knobs.iter().position(|(k, v)| k == "pkeys" && v == "on") {
            return Err(ConfigError::OtherMachine { index, why: "no protection keys here".into() });
        }
        self.0.configure(profile, knobs)
    }
    fn machine(&self) -> Vec<(String, String)> {
        vec![("pkeys".into(), "off".into())]
    }
    fn set(&mut self, s: &Setting) -> Result<(), String> {
        self.0.set(s)
    }
    fn spawn(&mut self) -> Result<TaskId, String> {
        self.0.spawn()
    }
    fn call(&mut self, task: TaskId, call: &Call) -> Result<Ret, Failure> {
        assert!(
            !matches!(call, Call::Gup { .. } | Call::Unpin { .. } | Call::ReadPinned { .. }),
            "the runner must not ask for what the backend lacks"
        );
        self.0.call(task, call)
    }
    fn page(&mut self, task: TaskId, addr: u64) -> Result<Option<PageObs>, String> {
        self.0.page(task, addr).map(|p| {
            p.map(|mut p| {
                p.anon_exclusive = None;
                p.writable = None;
                p
            })
        })
    }
    fn folio(&mut self, _: TaskId, _: u64) -> Result<Option<FolioObs>, String> {
        panic!("the runner must not ask for folio counters")
    }
    fn pool(&mut self, size: u64) -> Result<PoolObs, String> {
        self.0.pool(size)
    }
    fn task_state(&mut self, task: TaskId) -> Result<TaskObs, String> {
        self.0.task_state(task)
    }
    fn take_trace(&mut self) -> Vec<TraceLine> {
        // A live kernel does not narrate.
        let _ = self.0.take_trace();
        vec![]
    }
    fn self_check(&mut self) -> Result<(), String> {
        Ok(())
    }
}

fn run(text: &str, opts: &RunOptions) -> scenario::Report {
    let l = scenario::load("t.cow", text).unwrap_or_else(|(s, d)| panic!("{}", d[0].render(&s)));
    let mut be = Limited(ModelBackend::new());
    scenario::run_loaded(&l, &mut be, opts).unwrap()
}

#[test]
fn model_only_operations_skip_the_scenario_with_a_reason() {
    let r =
        run("task P\nP: A = mmap 4K\nP: write A fill 1\nP: h = pin_user_pages A 4K FOLL_LONGTERM\nP: unpin h\n", &RunOptions::default());
    assert_eq!(r.status, Status::Skip);
    let why = r.skip_reason.clone().unwrap();
    assert!(why.contains("line 4: `P: h = pin_user_pages A 4K FOLL_LONGTERM`"), "{why}");
    assert!(why.contains("which the limited backend cannot do"), "{why}");
    assert!(r.render(false).contains("\nSKIP t.cow: needs GUP"), "{}", r.render(false));
}

#[test]
fn knobs_skip_the_scenario() {
    let opts = RunOptions { knobs: vec![("anon_reuse".into(), "mapcount".into())], ..Default::default() };
    let r = run("task P\nP: A = mmap 4K\n", &opts);
    assert_eq!(r.status, Status::Skip);
    assert!(r.skip_reason.unwrap().contains("policy knobs"));
}

/// A machine knob the backend's machine does not have skips the scenario,
/// saying which line asked for it.
#[test]
fn a_machine_knob_of_another_machine_skips_the_scenario() {
    let r = run("set pkeys=on\ntask P\nP: A = mmap 4K x\nP: read A expect SIGSEGV\n", &RunOptions::default());
    assert_eq!(r.status, Status::Skip);
    let why = r.skip_reason.unwrap();
    assert!(why.contains("needs pkeys=on (line 1: `pkeys=on`)"), "{why}");
    assert!(why.contains("no protection keys here"), "{why}");
    // Machine knobs are not rule knobs: the backend runs the other value.
    let r = run("set pkeys=off\ntask P\nP: A = mmap 4K x\nP: read A expect fill 0\n", &RunOptions::default());
    assert_eq!(r.status, Status::Pass, "{}", r.render(false));
}

/// A model run compared with a backend takes that backend's machine
/// (`RunOptions::machine`), before the file's `set` lines: without a `set`
/// an execute-only page is readable, as on a CPU without keys; with one,
/// the file's value holds.
#[test]
fn a_model_run_takes_the_compared_machine_unless_the_file_says() {
    let machine = Limited(ModelBackend::new()).machine();
    let opts = RunOptions { machine, ..Default::default() };
    let model = |src: &str| {
        let l = scenario::load("t.cow", src).map_err(|(_, d)| d).expect("loads");
        scenario::run_loaded(&l, &mut ModelBackend::new(), &opts).expect("runs")
    };
    let r = model("task P\nP: A = mmap 4K x\nP: read A expect fill 0\n");
    assert_eq!(r.status, Status::Pass, "{}", r.render(false));
    assert!(r.knobs.iter().any(|k| k.knob == "pkeys" && k.value == "off"));
    let r = model("set pkeys=on\ntask P\nP: A = mmap 4K x\nP: read A expect SIGSEGV\n");
    assert_eq!(r.status, Status::Pass, "{}", r.render(false));
    let r = scenario::run_loaded(
        &scenario::load("t.cow", "task P\nP: A = mmap 4K x\nP: read A expect SIGSEGV\n").map_err(|(_, d)| d).expect("loads"),
        &mut ModelBackend::new(),
        &RunOptions::default(),
    )
    .expect("runs");
    assert_eq!(r.status, Status::Pass, "the default profile has keys: {}", r.render(false));
}

#[test]
fn unobservable_expectations_are_skipped_with_a_note() {
    let r = run(
        "task P\nP: A = mmap 4K\nP: write A fill 1\nP: fork C\n\
         expect A in P refcount == 2\n\
         expect A in P not anon_exclusive\n\
         expect A in P same page as A in C\n\
         C: write A fill 2\n\
         expect A in P different page from A in C\n\
         C: read A expect fill 2\n",
        &RunOptions::default(),
    );
    assert_eq!(r.status, Status::Pass, "{}", r.render(false));
    assert_eq!(r.summary.skipped, 2);
    assert_eq!(r.summary.passed, 3);
    let skipped: Vec<_> = r.checks().filter(|c| c.status == Status::Skip).collect();
    assert!(skipped[0].detail.as_deref().unwrap().contains("cannot observe folio counters"));
    assert!(skipped[1].detail.as_deref().unwrap().contains("cannot observe PageAnonExclusive"));
    // No kernel narration, but deltas still come from page frames.
    for e in &r.entries {
        if let Entry::Step(s) = e {
            assert!(s.kernel.is_empty());
        }
    }
}
