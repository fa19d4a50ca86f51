//! `cowlab run --compare`: one scenario under several rule choices, printed
//! as one trace with a column per choice.
//!
//! Every run executes the same statements, so the reports line up entry by
//! entry. A row is marked `≠` when the choices disagree on the step's
//! result, on an expectation, or on the decisions the kernel made (the
//! function that decided and what it decided: `hugetlb_wp→copy`).
use super::load;
use scenario::report::{Check, Entry, Report, Status};
use scenario::RunOptions;

/// Runs every file under every choice and prints the side-by-side traces;
/// with `html`, also writes the step-through page with a column per choice.
pub fn main(files: &[String], choices: &[(String, RunOptions)], html: Option<&str>) -> u8 {
    let mut usage = false;
    let mut failed = false;
    for f in files {
        let Some(l) = load(f) else {
            usage = true;
            continue;
        };
        let Some(reports) = super::run_each_choice(f, &l, choices.iter().map(|(t, o)| (t.as_str(), o.clone())), html.is_some()) else {
            usage = true;
            continue;
        };
        failed |= reports.iter().any(|r| r.status.fails_run());
        let titles: Vec<&str> = choices.iter().map(|(t, _)| t.as_str()).collect();
        print!("{}", render(f, &titles, &reports));
        if let Some(out) = html {
            let columns: Vec<(String, &Report)> = titles.iter().map(|t| t.to_string()).zip(&reports).collect();
            if let Err(e) = std::fs::write(out, picture::page(f, &columns, picture::Columns::PerReport)) {
                eprintln!("cowlab run: cannot write {out}: {e}");
                usage = true;
            }
        }
    }
    super::exit_code(usage, failed)
}

/// The kernel function and its decision in a trace line such as
/// `P: hugetlb_wp @0x7f…: folio_mapcount 1 → reuse` (`hugetlb_wp→reuse`);
/// lines without a decision give the function alone.
fn decision(line: &str) -> String {
    let body = match line.split_once(": ") {
        Some((task, rest)) if !task.contains(' ') => rest,
        _ => line,
    };
    let func = body.split([' ', ':']).next().unwrap_or(body);
    match body.rsplit_once("→ ") {
        Some((_, what)) => format!("{func}→{}", what.trim()),
        None => func.to_string(),
    }
}

fn checks_text(cs: &[&Check]) -> String {
    cs.iter().map(|c| format!("{} {}", c.status.mark(), c.text)).collect::<Vec<_>>().join(", ")
}

/// One cell per report for entry `i`, and whether they differ.
fn row(reports: &[Report], i: usize) -> Option<(String, Vec<String>, bool)> {
    let first = reports[0].entries.get(i)?;
    let mut cells = Vec::new();
    let mut keys = Vec::new();
    let head = match first {
        Entry::Step(s) => format!("[{}] {}", s.step, s.text),
        Entry::Expect(c) => c.text.clone(),
        _ => return None,
    };
    for r in reports {
        match r.entries.get(i) {
            Some(Entry::Step(s)) => {
                let result = if s.result.contains("livelocked") { "livelock".to_string() } else { s.result.clone() };
                let decisions: Vec<String> = s.kernel.iter().map(|k| decision(k)).filter(|d| d.contains('→')).collect();
                let checks: Vec<&Check> = s.checks.iter().collect();
                keys.push((result.clone(), decisions.clone(), checks.iter().map(|c| c.status).collect::<Vec<_>>()));
                let mut cell = result;
                if !decisions.is_empty() {
                    cell.push_str(&format!(" · {}", decisions.join(", ")));
                }
                if !checks.is_empty() {
                    cell.push_str(&format!(" · {}", checks_text(&checks)));
                }
                cells.push(cell);
            }
            Some(Entry::Expect(c)) => {
                keys.push((String::new(), vec![], vec![c.status]));
                cells.push(format!("{}{}", c.status.mark(), c.detail.as_ref().map(|d| format!(" {d}")).unwrap_or_default()));
            }
            _ => cells.push(String::new()),
        }
    }
    let differ = keys.windows(2).any(|w| w[0] != w[1]);
    Some((head, cells, differ))
}

fn render(file: &str, titles: &[&str], reports: &[Report]) -> String {
    let mut rows: Vec<(bool, String, Vec<String>)> = Vec::new();
    if reports.iter().any(|r| r.status == Status::Skip) {
        let why: Vec<String> = reports.iter().map(|r| r.skip_reason.clone().unwrap_or_default()).collect();
        return format!("SKIP {file}: {}\n", why.join(" | "));
    }
    let n = reports.iter().map(|r| r.entries.len()).min().unwrap_or(0);
    for i in 0..n {
        if let Some((head, cells, differ)) = row(reports, i) {
            rows.push((differ, head, cells));
        }
    }
    let status: Vec<String> =
        reports.iter().map(|r| format!("{} ({} passed, {} failed)", r.status.word(), r.summary.passed, r.summary.failed)).collect();
    let differ = status.windows(2).any(|w| w[0] != w[1]);
    rows.push((differ, "result".into(), status));
    let head_w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0).max(4);
    let widths: Vec<usize> =
        (0..titles.len()).map(|c| rows.iter().map(|r| r.2[c].chars().count()).max().unwrap_or(0).max(titles[c].chars().count())).collect();
    let line = |mark: &str, head: &str, cells: &[String]| {
        let mut s = format!("{mark} {head:<head_w$}");
        for (c, v) in cells.iter().enumerate() {
            s.push_str(&format!(" │ {v:<w$}", w = widths[c]));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = format!("== {file} (model backend): {}\n", titles.join(" vs "));
    out.push_str(&line(" ", "step", &titles.iter().map(|t| t.to_string()).collect::<Vec<_>>()));
    for (differ, head, cells) in &rows {
        out.push_str(&line(if *differ { "≠" } else { " " }, head, cells));
    }
    let marked = rows.iter().filter(|r| r.0).count();
    out.push_str(&format!("{marked} row(s) differ\n"));
    out
}
