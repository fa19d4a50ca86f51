//! The scenarios in crates/live/scenarios/ hold the kernel's answers (each
//! was checked with `cowlab diff` on a 6.18 machine). On the model they all
//! pass, except the divergences docs/divergences.md still lists as open:
//! those must fail, so that fixing one shows here and its entry moves.

use scenario::model::ModelBackend;
use scenario::report::Status;
use scenario::RunOptions;
use std::path::Path;

/// File → the open divergences.md entry it shows.
const OPEN: &[(&str, &str)] = &[("fuzz-shared-fault-around.cow", "§13: no fault-around in the model")];

#[test]
fn live_scenarios_pass_on_the_model_but_the_open_divergences() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../live/scenarios");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "cow")).collect();
    files.sort();
    assert!(files.len() >= 20, "scenarios went missing: {}", files.len());
    let mut wrong = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(f).unwrap();
        let l =
            scenario::load(&name, &text).unwrap_or_else(|(src, ds)| panic!("{}", ds.iter().map(|d| d.render(&src)).collect::<String>()));
        let mut be = ModelBackend::new().with_self_check(true);
        let r = scenario::run_loaded(&l, &mut be, &RunOptions::default()).unwrap_or_else(|ds| panic!("{name}: {ds:?}"));
        let open = OPEN.iter().find(|(f, _)| *f == name);
        match (r.status == Status::Pass, open) {
            (true, None) | (false, Some(_)) => {}
            (true, Some((_, why))) => wrong.push(format!("{name} passes now: {why} is fixed, move its entry")),
            (false, None) => wrong.push(r.render(false)),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
