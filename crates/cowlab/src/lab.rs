//! The policy lab: every combination of rule choices run over the kernel's
//! cow and gup_longterm matrices and the workload suite
//! (`suites::workloads`), on the model, one row of correctness and cost per
//! policy.
//!
//! Correctness comes from the scenarios' own expectations: a selftest's
//! failed check is a leak or a lost pin when the selftest says so ("Leak
//! from parent into child", "… pin is not reliable"), a workload's when the
//! line is tagged as one. Costs come from the model's counters
//! (`mm::events::Stats`), counted by the kernel functions that cause them,
//! summed over every scenario run.
//!
//! Policies run in parallel (rayon), and so do the scenarios of one policy:
//! each scenario runs on its own model kernel, so nothing is shared but the
//! generated scenario text.

use mm::events::Stats;
use mm::policy::{Policy, KNOBS};
use rayon::prelude::*;
use scenario::model::ModelBackend;
use scenario::RunOptions;
use serde::Serialize;
use suites::workloads::{Judgement, Workload};
use suites::{Config, Outcome, SelfTest, Suite};

/// One dimension of the product: a knob, or `profile`.
#[derive(Clone, Debug, Serialize)]
pub struct Dim {
    pub name: String,
    pub values: Vec<String>,
}

/// One policy: a profile and knob settings (knobs applied in order).
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub profile: Option<String>,
    pub knobs: Vec<(String, String)>,
}

impl Choice {
    /// `hugetlb_reuse=mapcount vmsplice=get`, with the profile first.
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = self.profile.iter().map(|p| format!("profile={p}")).collect();
        parts.extend(self.knobs.iter().map(|(k, v)| format!("{k}={v}")));
        if parts.is_empty() {
            "default".into()
        } else {
            parts.join(" ")
        }
    }

    fn options(&self) -> RunOptions {
        RunOptions { profile: self.profile.clone(), knobs: self.knobs.clone(), ..Default::default() }
    }

    /// The policy this choice stands for, or why it is not one.
    pub fn policy(&self) -> Result<Policy, String> {
        let name = self.profile.as_deref().unwrap_or(scenario::DEFAULT_PROFILE);
        let mut p = Policy::profile(name)
            .ok_or_else(|| format!("unknown profile `{name}`; profiles are: {}", mm::policy::profile_names().join(", ")))?;
        for (k, v) in &self.knobs {
            p.set(k, v)?;
        }
        Ok(p)
    }
}

/// The cartesian product of the dimensions, first dimension slowest.
/// Knob names must exist (an unknown name is a usage error for the whole
/// run); values are checked per policy when it runs.
pub fn product(dims: &[Dim]) -> Result<Vec<Choice>, String> {
    for d in dims {
        if d.name != "profile" && !KNOBS.iter().any(|k| k.name == d.name) {
            return Err(format!("unknown knob `{}`; knobs are: {}", d.name, KNOBS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")));
        }
        if d.values.is_empty() {
            return Err(format!("`{}` has no values: the product of the choices is empty", d.name));
        }
    }
    let mut out = vec![Choice { profile: None, knobs: vec![] }];
    for d in dims {
        out = out
            .into_iter()
            .flat_map(|c| {
                d.values.iter().map(move |v| {
                    let mut c = c.clone();
                    if d.name == "profile" {
                        c.profile = Some(v.clone());
                    } else {
                        c.knobs.push((d.name.clone(), v.clone()));
                    }
                    c
                })
            })
            .collect();
    }
    Ok(out)
}

/// What is run for every policy.
pub struct LabSuite {
    pub selftests: Vec<SelfTest>,
    pub workloads: Vec<Workload>,
}

impl LabSuite {
    pub fn generate() -> LabSuite {
        let cfg = Config::this_machine();
        // The lab weighs the policies the linux-mm thread argued about, on
        // the two matrices its claims and its report are about (cow and
        // gup_longterm); the hugetlb selftests are not part of it.
        let selftests = [Suite::Cow, Suite::GupLongterm].iter().flat_map(|s| suites::generate(*s, &cfg)).collect();
        LabSuite { selftests, workloads: suites::workloads::generate() }
    }

    /// Stable names of everything run, selftests first.
    pub fn names(&self) -> Vec<String> {
        let st = self.selftests.iter().map(|t| format!("{} #{} {}", t.suite.name(), t.number, t.description));
        st.chain(self.workloads.iter().map(|w| w.name.clone())).collect()
    }
}

/// Totals of one policy.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Metrics {
    pub pass: u64,
    pub fail: u64,
    pub xfail: u64,
    pub xpass: u64,
    pub skip: u64,
    /// Selftest leaks (failed/XFAIL "Leak from …") + workload leaks.
    pub leaks: u64,
    /// Selftest lost pins ("… pin is not reliable") + workload lost pins.
    pub lost_pins: u64,
    pub copied_4k: u64,
    pub copied_2m: u64,
    pub copied_1g: u64,
    pub unshare_copies: u64,
    /// Sum over scenarios of each one's peak of hugetlb pages in use.
    pub peak_2m: u64,
    pub peak_1g: u64,
    pub sigbus: u64,
    pub stolen: u64,
    pub livelocks: u64,
    pub faults: u64,
    /// `hugetlb_wp()` reuses of an already mapped page.
    pub hugetlb_reuses_mapped: u64,
    /// Workload steps that did not succeed (refused fork, EFAULT, livelock,
    /// a killed task's later steps).
    pub failed_ops: u64,
    /// Workload checks that failed without being a leak or lost pin.
    pub unexplained: Vec<String>,
    /// Per scenario (in [`LabSuite::names`] order): its outcome in words.
    #[serde(skip)]
    pub outcomes: Vec<String>,
    /// Workload leaks / lost pins / kills in the hugetlb workloads whose
    /// pool is exactly full, for the claims.
    pub exact_pool: ExactPool,
}

/// What the workloads with an exactly full hugetlb pool cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExactPool {
    pub sigbus: u64,
    pub stolen: u64,
    pub livelocks: u64,
    pub failed_ops: u64,
}

/// One policy's row: its totals, or why it could not run.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub choice: Choice,
    pub result: Result<Metrics, String>,
}

fn add_stats(m: &mut Metrics, s: &Stats) {
    m.copied_4k += s.copied_4k;
    m.copied_2m += s.copied_2m;
    m.copied_1g += s.copied_1g;
    m.unshare_copies += s.unshare_copies;
    m.peak_2m += s.hugetlb_peak_2m;
    m.peak_1g += s.hugetlb_peak_1g;
    m.sigbus += s.sigbus;
    m.stolen += s.stolen;
    m.livelocks += s.livelocks;
    m.faults += s.faults;
    m.hugetlb_reuses_mapped += s.hugetlb_reuses_mapped;
}

enum One {
    Selftest(Outcome, bool, Vec<String>, Stats),
    Workload(Judgement, Stats),
}

fn model() -> ModelBackend {
    ModelBackend::new().with_self_check(false).with_trace(false)
}

fn run_selftest(t: &SelfTest, opts: &RunOptions) -> Result<One, String> {
    let mut be = model();
    let (j, _) = suites::run(t, &mut be, opts).map_err(|e| format!("{}: {e}", t.description))?;
    Ok(One::Selftest(j.outcome, j.hung, j.messages, be.kernel().stats))
}

fn run_workload(w: &Workload, opts: &RunOptions) -> Result<One, String> {
    let loaded = scenario::load(&w.file_name(), &w.scenario)
        .map_err(|(src, ds)| format!("{}: {}", w.name, ds.iter().map(|d| d.render(&src)).collect::<String>()))?;
    let mut be = model();
    let report = scenario::run_loaded(&loaded, &mut be, opts)
        .map_err(|ds| format!("{}: {}", w.name, ds.iter().map(|d| d.render(&loaded.source)).collect::<String>()))?;
    Ok(One::Workload(w.judge(&report), be.kernel().stats))
}

/// A workload's outcome in words: its harms and kills, or `clean`.
fn workload_outcome(j: &Judgement, s: &Stats) -> String {
    let parts: Vec<String> = [
        (j.leaks, "leak"),
        (j.lost_pins, "lost pin"),
        (s.sigbus, "SIGBUS"),
        (s.stolen, "stolen"),
        (s.livelocks, "livelock"),
        (j.failed_ops, "failed op"),
        (j.unexplained.len() as u64, "unexplained"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| if *n == 1 { w.to_string() } else { format!("{w}×{n}") })
    .collect();
    if parts.is_empty() {
        "clean".into()
    } else {
        parts.join(", ")
    }
}

/// Runs one policy over everything.
pub fn run_policy(c: &Choice, suite: &LabSuite) -> Result<Metrics, String> {
    c.policy()?;
    let opts = c.options();
    let st: Vec<Result<One, String>> = suite.selftests.par_iter().map(|t| run_selftest(t, &opts)).collect();
    let wl: Vec<Result<One, String>> = suite.workloads.par_iter().map(|w| run_workload(w, &opts)).collect();
    let mut m = Metrics::default();
    for (i, r) in st.into_iter().chain(wl).enumerate() {
        match r? {
            One::Selftest(o, hung, msgs, s) => {
                match o {
                    Outcome::Pass => m.pass += 1,
                    Outcome::Fail => m.fail += 1,
                    Outcome::Xfail => m.xfail += 1,
                    Outcome::Xpass => m.xpass += 1,
                    Outcome::Skip => m.skip += 1,
                }
                if matches!(o, Outcome::Fail | Outcome::Xfail) {
                    if msgs.iter().any(|m| m.starts_with("Leak from")) {
                        m.leaks += 1;
                    }
                    if msgs.iter().any(|m| m.contains("pin is not reliable")) {
                        m.lost_pins += 1;
                    }
                }
                add_stats(&mut m, &s);
                m.outcomes.push(if hung { "timeout (livelock)".to_string() } else { o.to_string() });
            }
            One::Workload(j, s) => {
                m.leaks += j.leaks;
                m.lost_pins += j.lost_pins;
                m.failed_ops += j.failed_ops;
                let w = &suite.workloads[i - suite.selftests.len()];
                m.unexplained.extend(j.unexplained.iter().map(|u| format!("{}: {u}", w.name)));
                if w.name.contains("backing=hugetlb-exact") {
                    m.exact_pool.sigbus += s.sigbus;
                    m.exact_pool.stolen += s.stolen;
                    m.exact_pool.livelocks += s.livelocks;
                    m.exact_pool.failed_ops += j.failed_ops;
                }
                add_stats(&mut m, &s);
                m.outcomes.push(workload_outcome(&j, &s));
            }
        }
    }
    Ok(m)
}

/// Runs every policy (in parallel); a policy that fails keeps its place.
pub fn run(choices: &[Choice], suite: &LabSuite) -> Vec<Row> {
    choices.par_iter().map(|c| Row { choice: c.clone(), result: run_policy(c, suite) }).collect()
}

/// A scenario whose outcome differs between policies: its name, then each
/// distinct outcome with the (1-based) policies that gave it.
pub type Change = (String, Vec<(String, Vec<usize>)>);

/// Scenarios whose outcome differs between the policies that ran.
pub fn changes(rows: &[Row], names: &[String]) -> Vec<Change> {
    let ok: Vec<(usize, &Metrics)> = rows.iter().enumerate().filter_map(|(i, r)| r.result.as_ref().ok().map(|m| (i + 1, m))).collect();
    let mut out = Vec::new();
    for (t, name) in names.iter().enumerate() {
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, m) in &ok {
            let o = m.outcomes.get(t).cloned().unwrap_or_default();
            match groups.iter_mut().find(|(g, _)| *g == o) {
                Some((_, v)) => v.push(*i),
                None => groups.push((o, vec![*i])),
            }
        }
        if groups.len() > 1 {
            out.push((name.clone(), groups));
        }
    }
    out
}
