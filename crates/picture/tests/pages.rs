//! Every example renders to a page whose structure matches its trace: one
//! section per step, every folio and counter the state reports drawn, every
//! expectation listed with its mark; and a large region stays a few boxes.

use scenario::model::ModelBackend;
use scenario::report::{Entry, Report};
use scenario::RunOptions;
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "cow")).collect();
    files.sort();
    files
}

fn run_text(name: &str, text: &str) -> Report {
    let l = match scenario::load(name, text) {
        Ok(l) => l,
        Err((src, ds)) => panic!("{}", ds.iter().map(|d| d.render(&src)).collect::<String>()),
    };
    let mut be = ModelBackend::new().with_state_views(true);
    scenario::run_loaded(&l, &mut be, &RunOptions::default()).unwrap_or_else(|ds| panic!("{ds:?}"))
}

#[test]
fn every_example_renders_a_section_per_step_with_its_folios_and_checks() {
    let files = examples();
    assert!(files.len() >= 20, "examples went missing");
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let r = run_text(&name, &std::fs::read_to_string(&f).unwrap());
        let html = picture::report_page(&r);
        let steps: Vec<_> = r
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Step(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(html.matches("<section class=\"step\"").count(), steps.len(), "{name}: one section per step");
        assert_eq!(html.matches("<svg xmlns").count(), steps.len(), "{name}: one diagram per step");
        for (i, s) in steps.iter().enumerate() {
            let section = html.split("<section class=\"step\"").nth(i + 1).unwrap();
            assert!(section.contains(&picture::escape(&s.text)), "{name}: step {} shows its line", s.step);
            let state = s.state.as_ref().expect("the model describes its state after every step");
            for f in &state.folios {
                assert!(section.contains(&format!("data-folio=\"{}\"", f.id)), "{name} step {}: folio #{} drawn", s.step, f.id);
                assert!(
                    section.contains(&format!("ref {} · map {}", f.refcount, f.mapcount)),
                    "{name} step {}: folio #{}'s counters drawn",
                    s.step,
                    f.id
                );
            }
            for k in &s.kernel {
                assert!(section.contains(&picture::escape(k)), "{name} step {}: kernel line `{k}` shown", s.step);
            }
            for t in &state.tasks {
                assert!(section.contains(&format!("pid {} · mm {}", t.pid, t.mm)), "{name} step {}: task {} drawn", s.step, t.pid);
            }
        }
        let marks = r.checks().count();
        assert_eq!(html.matches("<li class=\"check ").count(), marks, "{name}: every expectation listed");
        assert!(html.len() < 4 << 20, "{name}: page of {} bytes", html.len());
        let outside = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!outside.contains("http") && !outside.contains(" src="), "{name}: no external assets");
    }
}

#[test]
fn a_quarter_gibibyte_of_small_pages_is_one_folio_group_and_one_entry_run() {
    let r = run_text("big.cow", "thp all never\ntask P\nP: A = mmap 256M\nP: write A fill 0x5a\nP: fork C\n");
    let Some(Entry::Step(fork)) = r.entries.iter().rev().find(|e| matches!(e, Entry::Step(_))) else { panic!("no step") };
    let state = fork.state.as_ref().unwrap();
    assert_eq!(state.folios.len(), 1, "{:?}", state.folios.iter().map(|f| (f.id, f.count)).collect::<Vec<_>>());
    assert_eq!(state.folios[0].count, 65_536);
    assert_eq!((state.folios[0].refcount, state.folios[0].mapcount), (2, 2));
    for t in &state.tasks {
        let runs = &t.vmas[0].entries;
        assert_eq!(runs.len(), 1, "task {}: {runs:?}", t.pid);
        assert_eq!((runs[0].count, runs[0].write), (65_536, false));
    }
    let html = picture::report_page(&r);
    assert!(html.len() < 64 << 10, "{} bytes", html.len());
    assert!(html.contains("folio #") && html.contains("×65536"));
}

#[test]
fn compare_columns_and_task_columns_lay_out_every_step() {
    let text = "task P\nP: A = mmap 4K\nP: write A fill 1\nP: fork C\nC: write A fill 2\nP: read A expect fill 1\n";
    let a = run_text("a.cow", text);
    let b = run_text("b.cow", text);
    let html = picture::page("two", &[("one".into(), &a), ("two".into(), &b)], picture::Columns::PerReport);
    assert_eq!(html.matches("<section class=\"step\"").count(), 5);
    assert_eq!(html.matches("<h3>one</h3>").count(), 5);
    assert_eq!(html.matches("<h3>two</h3>").count(), 5);
    let html = picture::page("race", &[("model".into(), &a)], picture::Columns::PerTask);
    // Step 4 is C's: its section has a P column and a C column, C's line current.
    let s4 = html.split("<section class=\"step\"").nth(4).unwrap();
    assert!(s4.contains("<h3>P</h3>") && s4.contains("<h3>C</h3>"));
    assert!(s4.contains("<div class=\"now\">[4] <code>C: write A fill 2</code>"), "{s4}");
}
