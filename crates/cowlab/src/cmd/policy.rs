//! `cowlab policy`: the policy lab's command line. Every combination of the
//! `--vary` and `--profiles` choices is run over the cow and gup_longterm
//! matrices and the workload suite; one row per policy, then the scenarios
//! whose outcome changes between policies. `--format markdown` writes the
//! report checked in as docs/policy-lab.md, with the linux-mm thread's
//! claims and their measured answers.
use super::{EXIT_OK, EXIT_USAGE};
use crate::lab::{self, Change, Choice, Dim, LabSuite, Metrics, Row};
use std::fmt::Write as _;
use std::time::Instant;

/// Run every combination of rule choices over the selftest matrices and the
/// workload suite and compare correctness and cost (exit 0; 2 on a usage
/// error or when a policy could not run — its row says why).
#[derive(clap::Args)]
pub struct Args {
    /// A knob and the values to try, e.g. --vary hugetlb_reuse=mapcount,refcount
    /// (repeatable; the product of all is run). Without --vary or --profiles:
    /// the April 2024 linux-mm thread's question, hugetlb_reuse ×
    /// vmsplice × hugetlb_cow_fail.
    #[arg(long, value_name = "KNOB=V1,V2", value_parser = parse_vary)]
    vary: Vec<Dim>,
    /// Profiles to try, comma-separated (a dimension of the product).
    #[arg(long, value_name = "A,B")]
    profiles: Option<String>,
    /// table (for a terminal), json (one document), markdown (docs/policy-lab.md).
    #[arg(long, default_value = "table", value_parser = ["table", "json", "markdown"])]
    format: String,
    /// Also write every workload as a scenario file into DIR.
    #[arg(long, value_name = "DIR")]
    emit_scenarios: Option<String>,
}

fn parse_vary(s: &str) -> Result<Dim, String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => {
            Ok(Dim { name: k.to_string(), values: v.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect() })
        }
        _ => Err(format!("`{s}` is not KNOB=V1,V2 (e.g. hugetlb_reuse=mapcount,refcount)")),
    }
}

/// The thread's question: the default product.
pub const THREAD: &[(&str, &[&str])] = &[
    ("hugetlb_reuse", &["mapcount", "refcount", "refcount_naive"]),
    ("vmsplice", &["get", "pin"]),
    ("hugetlb_cow_fail", &["steal", "sigbus"]),
];

pub fn main(a: Args) -> u8 {
    let mut dims = Vec::new();
    if let Some(p) = &a.profiles {
        dims.push(Dim { name: "profile".into(), values: p.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect() });
    }
    dims.extend(a.vary.iter().cloned());
    let default = dims.is_empty();
    if default {
        dims = THREAD.iter().map(|(k, vs)| Dim { name: k.to_string(), values: vs.iter().map(|v| v.to_string()).collect() }).collect();
    }
    let choices = match lab::product(&dims) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cowlab: {e}");
            return EXIT_USAGE;
        }
    };
    let suite = LabSuite::generate();
    if let Some(dir) = &a.emit_scenarios {
        if let Err(e) = emit(dir, &suite) {
            eprintln!("cowlab: {e}");
            return EXIT_USAGE;
        }
    }
    let t0 = Instant::now();
    let rows = lab::run(&choices, &suite);
    let took = t0.elapsed().as_secs_f64();
    let names = suite.names();
    let changes = lab::changes(&rows, &names);
    let runs = choices.len() * names.len();
    let threads = rayon::current_num_threads();
    match a.format.as_str() {
        "json" => {
            let doc = serde_json::json!({
                "dimensions": dims,
                "selftests": suite.selftests.len(),
                "workloads": suite.workloads.len(),
                "wall_seconds": took,
                "threads": threads,
                "policies": rows.iter().enumerate().map(|(i, r)| serde_json::json!({
                    "number": i + 1,
                    "label": r.choice.label(),
                    "profile": r.choice.profile,
                    "knobs": r.choice.knobs.iter().map(|(k, v)| serde_json::json!({"knob": k, "value": v})).collect::<Vec<_>>(),
                    "metrics": r.result.as_ref().ok(),
                    "error": r.result.as_ref().err(),
                })).collect::<Vec<_>>(),
                "changes": changes.iter().map(|(n, gs)| serde_json::json!({
                    "scenario": n,
                    "outcomes": gs.iter().map(|(o, ps)| serde_json::json!({"outcome": o, "policies": ps})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            println!("{doc}");
        }
        "markdown" => print!("{}", markdown(&dims, &rows, &changes, &suite, default)),
        _ => {
            print!("{}", table(&dims, &rows));
            print!("{}", unexplained(&rows));
            print!("{}", changes_text(&changes, "", ""));
            println!(
                "# {} policies × ({} selftests + {} workloads) = {runs} scenario runs in {took:.2} s ({threads} threads)",
                choices.len(),
                suite.selftests.len(),
                suite.workloads.len()
            );
        }
    }
    let failed: Vec<(usize, &Row)> = rows.iter().enumerate().filter(|(_, r)| r.result.is_err()).collect();
    for (i, r) in &failed {
        eprintln!("cowlab: policy #{} ({}): {}", i + 1, r.choice.label(), r.result.as_ref().err().map(|e| first_line(e)).unwrap_or(""));
    }
    if failed.is_empty() {
        EXIT_OK
    } else {
        EXIT_USAGE
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn emit(dir: &str, suite: &LabSuite) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    for w in &suite.workloads {
        let path = std::path::Path::new(dir).join(w.file_name());
        std::fs::write(&path, &w.scenario).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The value of each dimension for one row.
fn dim_values(dims: &[Dim], c: &Choice) -> Vec<String> {
    dims.iter()
        .map(|d| {
            if d.name == "profile" {
                c.profile.clone().unwrap_or_default()
            } else {
                c.knobs.iter().rev().find(|(k, _)| *k == d.name).map(|(_, v)| v.clone()).unwrap_or_default()
            }
        })
        .collect()
}

const HEADS: &[&str] = &[
    "pass",
    "fail",
    "xfail",
    "leaks",
    "lost pins",
    "copied 4K",
    "2M",
    "1G",
    "unshare",
    "peak 2M",
    "1G",
    "SIGBUS",
    "stolen",
    "livelocks",
    "faults",
    "failed ops",
];

fn cells(m: &Metrics) -> Vec<String> {
    [
        m.pass,
        m.fail,
        m.xfail,
        m.leaks,
        m.lost_pins,
        m.copied_4k,
        m.copied_2m,
        m.copied_1g,
        m.unshare_copies,
        m.peak_2m,
        m.peak_1g,
        m.sigbus,
        m.stolen,
        m.livelocks,
        m.faults,
        m.failed_ops,
    ]
    .iter()
    .map(u64::to_string)
    .collect()
}

/// Rows of cells: a header, then one per policy (an error fills the rest).
fn grid(dims: &[Dim], rows: &[Row]) -> Vec<Vec<String>> {
    let mut head = vec!["#".to_string()];
    head.extend(dims.iter().map(|d| d.name.clone()));
    head.extend(HEADS.iter().map(|s| s.to_string()));
    let mut g = vec![head];
    for (i, r) in rows.iter().enumerate() {
        let mut line = vec![(i + 1).to_string()];
        line.extend(dim_values(dims, &r.choice));
        match &r.result {
            Ok(m) => line.extend(cells(m)),
            Err(e) => line.push(format!("error: {}", first_line(e))),
        }
        g.push(line);
    }
    g
}

fn table(dims: &[Dim], rows: &[Row]) -> String {
    let g = grid(dims, rows);
    let n = g[0].len();
    let width: Vec<usize> = (0..n).map(|c| g.iter().filter(|r| r.len() == n).map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for r in &g {
        let line: Vec<String> =
            r.iter().enumerate().map(|(c, v)| if r.len() == n { format!("{v:>w$}", w = width[c]) } else { v.clone() }).collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
    }
    s
}

fn unexplained(rows: &[Row]) -> String {
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        if let Ok(m) = &r.result {
            for u in &m.unexplained {
                let _ = writeln!(s, "# policy #{}: unexplained failure: {u}", i + 1);
            }
        }
    }
    s
}

fn policies(ps: &[usize]) -> String {
    ps.iter().map(|p| format!("#{p}")).collect::<Vec<_>>().join(" ")
}

fn changes_text(changes: &[Change], bullet: &str, code: &str) -> String {
    let mut s =
        format!("{}Scenarios whose outcome changes between policies: {}\n", if bullet.is_empty() { "# " } else { "" }, changes.len());
    if !bullet.is_empty() {
        s.push('\n');
    }
    for (name, groups) in changes {
        let gs: Vec<String> = groups.iter().map(|(o, ps)| format!("{o} in {}", policies(ps))).collect();
        let _ = writeln!(s, "{bullet}{code}{name}{code}: {}", gs.join("; "));
    }
    s
}

/// A row whose knobs include all of `want` (knobs not named take any value).
fn find<'a>(rows: &'a [Row], want: &[(&str, &str)]) -> Option<(usize, &'a Metrics)> {
    rows.iter().enumerate().find_map(|(i, r)| {
        let has = want.iter().all(|(k, v)| r.choice.knobs.iter().rev().find(|(kk, _)| kk == k).is_some_and(|(_, vv)| vv == v));
        match (&r.result, has && r.choice.profile.is_none()) {
            (Ok(m), true) => Some((i + 1, m)),
            _ => None,
        }
    })
}

/// One claim of the thread: what was said, the command that tests it, and
/// what the model measured.
struct Claim {
    who: &'static str,
    said: &'static str,
    command: &'static str,
    answer: String,
}

fn claims(rows: &[Row]) -> Vec<Claim> {
    let base = |reuse: &'static str, vmsplice: &'static str, fail: &'static str| {
        find(rows, &[("hugetlb_reuse", reuse), ("vmsplice", vmsplice), ("hugetlb_cow_fail", fail)])
    };
    let missing = || "not measured: this run lacks the policies it needs".to_string();
    let mut out = Vec::new();

    let answer = match (base("mapcount", "get", "steal"), base("refcount", "get", "steal")) {
        (Some((a, m)), Some((b, r))) => format!(
            "{}: #{a} (mapcount) has {} XFAILs and {} leaks; #{b} (refcount) has {} XFAILs, {} fails and {} leaks",
            if m.xfail == 8 && r.xfail == 0 && r.fail == 0 && r.leaks == 0 { "holds" } else { "does not hold as stated" },
            m.xfail,
            m.leaks,
            r.xfail,
            r.fail,
            r.leaks
        ),
        _ => missing(),
    };
    out.push(Claim {
        who: "Peter Xu",
        said: "hugetlb_wp() reusing by refcount instead of mapcount removes the 8 hugetlb vmsplice XFAILs of the cow selftest",
        command: "cowlab policy --vary hugetlb_reuse=mapcount,refcount",
        answer,
    });

    let answer = match (base("mapcount", "get", "steal"), base("refcount", "get", "steal"), base("refcount_naive", "get", "steal")) {
        (Some((a, m)), Some((b, r)), Some((c, n))) => format!(
            "{}: reuses of a mapped huge page in hugetlb_wp(): #{a} mapcount {}, #{b} refcount {}, #{c} refcount_naive {}; 2M copies {} / {} / {}, 1G copies {} / {} / {}",
            if n.hugetlb_reuses_mapped == 0 { "holds" } else { "does not hold" },
            m.hugetlb_reuses_mapped,
            r.hugetlb_reuses_mapped,
            n.hugetlb_reuses_mapped,
            m.copied_2m,
            r.copied_2m,
            n.copied_2m,
            m.copied_1g,
            r.copied_1g,
            n.copied_1g
        ),
        _ => missing(),
    };
    out.push(Claim {
        who: "David Hildenbrand",
        said: "hugetlb_fault() holds its own folio reference when it calls hugetlb_wp(), so a naive refcount == 1 rule essentially always copies",
        command: "cowlab policy --vary hugetlb_reuse=mapcount,refcount,refcount_naive",
        answer,
    });

    let exact = |(i, m): (usize, &Metrics)| {
        format!(
            "#{i} SIGBUS {} stolen {} livelocks {} failed ops {}",
            m.exact_pool.sigbus, m.exact_pool.stolen, m.exact_pool.livelocks, m.exact_pool.failed_ops
        )
    };
    let answer = match (
        base("mapcount", "get", "steal"),
        base("mapcount", "get", "sigbus"),
        base("refcount_naive", "get", "steal"),
        base("refcount_naive", "get", "sigbus"),
    ) {
        (Some(a), Some(b), Some(c), Some(d)) => {
            let hurt = [a, b, c, d].iter().all(|(_, m)| m.exact_pool.sigbus + m.exact_pool.stolen + m.exact_pool.livelocks > 0);
            format!(
                "{}: workloads with the pool exactly full: mapcount+steal {}; mapcount+sigbus {}; refcount_naive+steal {}; refcount_naive+sigbus {}",
                if hurt { "holds" } else { "does not hold for every policy" },
                exact(a),
                exact(b),
                exact(c),
                exact(d)
            )
        }
        _ => missing(),
    };
    out.push(Claim {
        who: "David Hildenbrand",
        said: "hugetlb pages are scarce and not overcommitted: a COW after fork can find no free page, and then someone must be killed",
        command: "cowlab policy --vary hugetlb_reuse=mapcount,refcount_naive --vary hugetlb_cow_fail=steal,sigbus",
        answer,
    });

    let answer = match (base("mapcount", "get", "steal"), base("mapcount", "get", "sigbus")) {
        (Some((a, s)), Some((b, g))) => format!(
            "{}: #{a} (steal) takes {} pages from children and has {} SIGBUS kills; #{b} (sigbus) takes {} and has {} SIGBUS kills",
            if s.stolen > 0 && g.stolen == 0 { "holds" } else { "does not hold" },
            s.stolen,
            s.sigbus,
            g.stolen,
            g.sigbus
        ),
        _ => missing(),
    };
    out.push(Claim {
        who: "David Hildenbrand",
        said: "today the reservation owner's failed COW is answered by unmap_ref_private(): the page is stolen from the children, which die on their next touch",
        command: "cowlab policy --vary hugetlb_cow_fail=steal,sigbus",
        answer,
    });

    let answer = match (base("mapcount", "get", "steal"), base("mapcount", "pin", "steal")) {
        (Some((a, g)), Some((b, p))) => format!(
            "{}: #{a} (get) {} leaks, {} XFAILs, {} unshare copies; #{b} (pin) {} leaks, {} XFAILs, {} unshare copies",
            if p.leaks == 0 && p.xfail == 0 { "holds" } else { "does not hold" },
            g.leaks,
            g.xfail,
            g.unshare_copies,
            p.leaks,
            p.xfail,
            p.unshare_copies
        ),
        _ => missing(),
    };
    out.push(Claim {
        who: "David Hildenbrand",
        said: "vmsplice() should take FOLL_PIN instead of FOLL_GET, so that R/O pins unshare and nothing leaks",
        command: "cowlab policy --vary vmsplice=get,pin",
        answer,
    });
    out
}

/// The issue's expectations (issue 12), each with what the model measured.
fn expectations(rows: &[Row]) -> Vec<(&'static str, String)> {
    let with = |k: &str, v: &str| -> Vec<(usize, &Metrics)> {
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.choice.profile.is_none() && r.choice.knobs.iter().any(|(kk, vv)| kk == k && vv == v))
            .filter_map(|(i, r)| r.result.as_ref().ok().map(|m| (i + 1, m)))
            .collect()
    };
    let list = |v: &[(usize, &Metrics)], f: &dyn Fn(&Metrics) -> String| {
        v.iter().map(|(i, m)| format!("#{i} {}", f(m))).collect::<Vec<_>>().join(", ")
    };
    let mut out = Vec::new();
    let mc = find(rows, &[("hugetlb_reuse", "mapcount"), ("vmsplice", "get")]);
    out.push((
        "mapcount + get: 8 cow XFAILs (today's kernel)",
        match mc {
            Some((i, m)) => format!("{}: #{i} has {} XFAILs", if m.xfail == 8 { "as expected" } else { "differs" }, m.xfail),
            None => "not measured in this run".into(),
        },
    ));
    let rc = with("hugetlb_reuse", "refcount");
    out.push((
        "refcount: 0 leaks",
        if rc.is_empty() {
            "not measured in this run".into()
        } else {
            format!(
                "{}: leaks {}; the price: SIGBUS / stolen / livelocks {}",
                if rc.iter().all(|(_, m)| m.leaks == 0) { "as expected" } else { "differs" },
                list(&rc, &|m| m.leaks.to_string()),
                list(&rc, &|m| format!("{}/{}/{}", m.sigbus, m.stolen, m.livelocks))
            )
        },
    ));
    let nv = with("hugetlb_reuse", "refcount_naive");
    out.push((
        "refcount_naive: a copy on every hugetlb write fault after fork, SIGBUS or steals where the pool is full",
        if nv.is_empty() {
            "not measured in this run".into()
        } else {
            format!(
                "{}: reuses of a mapped huge page {}; with the pool exactly full SIGBUS / stolen / livelocks {}. Not in the expectation: \
                 the naive rule has no anon-exclusive shortcut, so a pinned exclusive page that is written through a R/O mapping is \
                 copied away from its pin: lost pins {}, selftest fails {}",
                if nv.iter().all(|(_, m)| m.hugetlb_reuses_mapped == 0) { "as expected" } else { "differs" },
                list(&nv, &|m| m.hugetlb_reuses_mapped.to_string()),
                list(&nv, &|m| format!("{}/{}/{}", m.exact_pool.sigbus, m.exact_pool.stolen, m.exact_pool.livelocks)),
                list(&nv, &|m| m.lost_pins.to_string()),
                list(&nv, &|m| m.fail.to_string())
            )
        },
    ));
    let pin = with("vmsplice", "pin");
    let get = with("vmsplice", "get");
    out.push((
        "vmsplice=pin: 0 leaks, at the cost of unshare copies at vmsplice time",
        if pin.is_empty() || get.is_empty() {
            "not measured in this run".into()
        } else {
            let u = |v: &[(usize, &Metrics)]| v.iter().map(|(_, m)| m.unshare_copies).max().unwrap_or(0);
            format!(
                "{}: leaks {}; unshare copies up to {} with pin vs up to {} with get",
                if pin.iter().all(|(_, m)| m.leaks == 0) { "as expected" } else { "differs" },
                list(&pin, &|m| m.leaks.to_string()),
                u(&pin),
                u(&get)
            )
        },
    ));
    out
}

fn markdown(dims: &[Dim], rows: &[Row], changes: &[Change], suite: &LabSuite, default: bool) -> String {
    let mut s = String::new();
    let cmd = if default {
        "cowlab policy --format markdown".to_string()
    } else {
        let mut c = "cowlab policy".to_string();
        for d in dims {
            if d.name == "profile" {
                let _ = write!(c, " --profiles {}", d.values.join(","));
            } else {
                let _ = write!(c, " --vary {}={}", d.name, d.values.join(","));
            }
        }
        c + " --format markdown"
    };
    let _ = writeln!(s, "# The policy lab\n");
    let _ = writeln!(s, "Generated by `{cmd}`; do not edit (a test fails when this file is stale).\n");
    let _ = writeln!(
        s,
        "Every policy below runs the kernel's cow and gup_longterm selftests ({} tests) and the workload suite ({} workloads, \
         `crates/suites/src/workloads.rs`) on the model. Leaks and lost pins are what the scenarios themselves call so: a selftest \
         failure the selftest reports as \"Leak from …\" or \"… pin is not reliable\", a workload expectation tagged as a leak or a \
         lost pin. The costs are the model's counters (`mm::events::Stats`), summed over every scenario; peaks are per scenario, \
         summed.\n",
        suite.selftests.len(),
        suite.workloads.len()
    );
    let _ = writeln!(s, "## The thread's claims (linux-mm, April 2024)\n");
    let _ = writeln!(s, "| who | claim | command | measured |");
    let _ = writeln!(s, "| --- | --- | --- | --- |");
    for c in claims(rows) {
        let _ = writeln!(s, "| {} | {} | `{}` | {} |", c.who, c.said, c.command, c.answer);
    }
    let _ = writeln!(s, "\n## What issue 12 expected, and what the model shows\n");
    let _ = writeln!(s, "| expected | measured |");
    let _ = writeln!(s, "| --- | --- |");
    for (e, m) in expectations(rows) {
        let _ = writeln!(s, "| {e} | {m} |");
    }
    let _ = writeln!(s, "\n## One row per policy\n");
    let g = grid(dims, rows);
    let n = g[0].len();
    for (i, r) in g.iter().enumerate() {
        let mut cells = r.clone();
        cells.resize(n, String::new());
        let _ = writeln!(s, "| {} |", cells.join(" | "));
        if i == 0 {
            let _ = writeln!(s, "|{}", " --- |".repeat(n));
        }
    }
    let _ = writeln!(
        s,
        "\nColumns: selftest pass / fail / xfail; leaks and lost pins (selftests + workloads); pages copied by size (4K, 2M, 1G) and \
         copies made by unshare faults; peak hugetlb pages in use (2M, 1G); tasks killed by SIGBUS; pages stolen from children by \
         unmap_ref_private(); livelocks; faults; workload steps that did not succeed (refused fork, EFAULT, livelock, a killed \
         task's later steps).\n"
    );
    let unexp = unexplained(rows);
    if !unexp.is_empty() {
        let _ = writeln!(s, "## Unexplained failures\n\n```\n{unexp}```\n");
    }
    let _ = writeln!(s, "## {}", changes_text(changes, "- ", "`"));
    s
}
