//! Output as kselftest prints it (KTAP), and a compact summary.

use crate::{Judged, Outcome, SelfTest, Suite};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Totals of one suite run, as kselftest counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub pass: usize,
    pub fail: usize,
    pub xfail: usize,
    pub xpass: usize,
    pub skip: usize,
    pub error: usize,
}

impl Totals {
    pub fn of<'a>(judged: impl IntoIterator<Item = &'a Judged>) -> Totals {
        let mut t = Totals::default();
        for j in judged {
            match j.outcome {
                Outcome::Pass => t.pass += 1,
                Outcome::Fail => t.fail += 1,
                Outcome::Xfail => t.xfail += 1,
                Outcome::Xpass => t.xpass += 1,
                Outcome::Skip => t.skip += 1,
            }
        }
        t
    }
}

/// The KTAP text of one suite: header, plan, `# [RUN]` lines, results,
/// and the closing totals.
pub fn render(suite: Suite, preamble: &[String], results: &[(&SelfTest, Judged)]) -> String {
    let mut s = String::new();
    // gup_longterm.c detects its hugetlb sizes before printing the header,
    // mkdirty.c its THP size; the hugetlb programs print what they found
    // after their plan.
    let (before, after, after_plan) = match suite {
        Suite::GupLongterm | Suite::Mkdirty => (preamble, &[][..], &[][..]),
        Suite::Cow => (&[][..], preamble, &[][..]),
        _ => (&[][..], &[][..], preamble),
    };
    for p in before {
        let _ = writeln!(s, "# {p}");
    }
    let _ = writeln!(s, "TAP version 13");
    for p in after {
        let _ = writeln!(s, "# {p}");
    }
    let _ = writeln!(s, "1..{}", results.len());
    for p in after_plan {
        let _ = writeln!(s, "# {p}");
    }
    let mut section = "";
    for (t, j) in results {
        let sec = section_of(suite, t);
        if sec != section && !sec.is_empty() {
            let _ = writeln!(s, "{sec}");
            section = sec;
        }
        if j.raw.is_none() && !prints_own_headings(suite) {
            let _ = writeln!(s, "# [RUN] {}", t.description);
        }
        for m in &j.messages {
            let _ = writeln!(s, "# {m}");
        }
        let n = t.number;
        let line = match (j.outcome, &j.raw) {
            (Outcome::Skip, Some(r)) => format!("ok {n} # SKIP {r}"),
            (Outcome::Pass, _) => format!("ok {n} {}", t.description),
            (Outcome::Fail, _) if j.hung => format!("not ok {n} {} # TIMEOUT", t.description),
            (Outcome::Fail, _) => format!("not ok {n} {}", t.description),
            (Outcome::Xfail, _) => format!("ok {n} # XFAIL {}", t.description),
            (Outcome::Xpass, _) => format!("ok {n} # XPASS {}", t.description),
            (Outcome::Skip, None) => format!("ok {n} # SKIP {}", t.description),
        };
        let _ = writeln!(s, "{line}");
    }
    let tot = Totals::of(results.iter().map(|(_, j)| j));
    if tot.skip > 0 {
        let _ = writeln!(s, "# {} skipped test(s) detected. Consider enabling relevant config options to improve coverage.", tot.skip);
    }
    let _ = writeln!(
        s,
        "# Totals: pass:{} fail:{} xfail:{} xpass:{} skip:{} error:{}",
        tot.pass, tot.fail, tot.xfail, tot.xpass, tot.skip, tot.error
    );
    s
}

/// The `# [INFO]` / `# [RUN]` section lines cow.c prints between groups;
/// for the suites whose tests print their own `# [INFO] …` or
/// `# [RUN] function` line first, that line, which their generators make
/// the scenario's first line (a comment, as kselftest prints it).
fn section_of(suite: Suite, t: &SelfTest) -> &str {
    match suite {
        Suite::Cow => cow_section(&t.description),
        s if prints_own_headings(s) => t.scenario.lines().next().filter(|l| l.starts_with("# [")).unwrap_or(""),
        _ => "",
    }
}

/// The selftests that print an `# [INFO] …` or `# [RUN] function` line of
/// their own before a test (or a group of tests), and no `# [RUN]` line
/// naming the test.
fn prints_own_headings(suite: Suite) -> bool {
    matches!(suite, Suite::Mkdirty | Suite::MadvPopulate | Suite::MapPopulate | Suite::MapFixedNoreplace | Suite::MremapDontunmap)
}

fn cow_section(desc: &str) -> &'static str {
    if desc.contains("when collapsing") {
        "# [INFO] Anonymous THP tests"
    } else if desc.starts_with("Basic COW ...") || desc.starts_with("R/O longterm GUP") {
        "# [RUN] Non-anonymous memory tests in private mappings"
    } else {
        "# [INFO] Anonymous memory tests in private mappings"
    }
}

/// A compact table: one row per memory kind (or group of tests), one
/// column per outcome.
pub fn summary(suite: Suite, results: &[(&SelfTest, Judged)]) -> String {
    let mut rows: BTreeMap<String, Totals> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (t, j) in results {
        // A description that names no memory kind: the suites with their
        // own `# [INFO]` / `# [RUN]` lines (and cow's sections) group by
        // them, the others get a row per test.
        let kind = match t.description.split(" ... with ").nth(1) {
            Some(k) => k.to_string(),
            None => match section_of(suite, t) {
                "" => t.description.clone(),
                h => h.trim_start_matches("# ").to_string(),
            },
        };
        if !rows.contains_key(&kind) {
            order.push(kind.clone());
        }
        let r = rows.entry(kind).or_default();
        match j.outcome {
            Outcome::Pass => r.pass += 1,
            Outcome::Fail => r.fail += 1,
            Outcome::Xfail => r.xfail += 1,
            Outcome::Xpass => r.xpass += 1,
            Outcome::Skip => r.skip += 1,
        }
    }
    let w = order.iter().map(|k| k.len()).max().unwrap_or(10).max(11);
    let mut s =
        format!("{}\n{:<w$}  {:>5} {:>5} {:>5} {:>5} {:>5}\n", suite.name(), "memory kind", "pass", "fail", "xfail", "xpass", "skip");
    for k in &order {
        let r = rows[k];
        let _ = writeln!(s, "{k:<w$}  {:>5} {:>5} {:>5} {:>5} {:>5}", r.pass, r.fail, r.xfail, r.xpass, r.skip);
    }
    let t = Totals::of(results.iter().map(|(_, j)| j));
    let _ = writeln!(s, "{:<w$}  {:>5} {:>5} {:>5} {:>5} {:>5}", "total", t.pass, t.fail, t.xfail, t.xpass, t.skip);
    s
}

/// The lines a selftest prints about what it detected (cow.c,
/// gup_longterm.c and mkdirty.c before their plan, the hugetlb programs
/// after it).
pub fn preamble(suite: Suite, cfg: &crate::Config) -> Vec<String> {
    let mut v = Vec::new();
    match suite {
        Suite::Cow | Suite::GupLongterm => {}
        Suite::MapHugetlb => return vec!["Default size hugepages".into(), "Mapping 256 Mbytes".into()],
        Suite::Mkdirty if cfg.pmd_size != 0 => return vec![format!("[INFO] detected THP size: {} KiB", cfg.pmd_size / 1024)],
        Suite::HugetlbFaultAfterMadv if cfg.default_hugetlb != 0 => {
            return vec![format!("[INFO] detected default hugetlb page size: {} KiB", cfg.default_hugetlb / 1024)];
        }
        _ => return v,
    }
    if suite == Suite::Cow && cfg.pmd_size != 0 {
        v.push(format!("[INFO] detected PMD size: {} KiB", cfg.pmd_size / 1024));
        for s in &cfg.thp_sizes {
            v.push(format!("[INFO] detected THP size: {} KiB", s / 1024));
        }
    }
    for s in &cfg.hugetlb_sizes {
        v.push(format!("[INFO] detected hugetlb page size: {} KiB", s / 1024));
    }
    v
}
