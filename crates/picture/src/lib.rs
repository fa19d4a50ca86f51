//! Pictures of cowlab traces: one self-contained HTML page (no network, no
//! external assets) with a section per step — the step's line, what the
//! kernel did, the counter changes, the expectations ✓/✗ — and an SVG
//! diagram of the whole state after it (see [`diagram`]), changes since the
//! previous step highlighted. Keyboard (←/→, j/k, Home/End), buttons and a
//! slider move between steps; `#step-N` opens step N, `#all` shows every
//! step at once (printing).
//!
//! Everything is drawn from the JSON trace's types ([`scenario::Report`]
//! with [`mm::view::StateView`] per step), so any driver that produces
//! reports — `run`, `run --compare`, `selftest`, the explorer — gets
//! pictures from this one renderer. Plain generated SVG and a few lines of
//! vanilla script: nothing to fetch, nothing to build, and the page works
//! opened from disk.
//!
//! `#selftest` in the page's address makes its script step through every
//! section with the keyboard handler and the slider and record the result
//! on `<body data-selftest=…>` (script errors go to `data-script-error`), so
//! CI can check a page in a headless browser with `--dump-dom`.

pub mod diagram;

use scenario::report::{Check, Entry, Report, StepReport};
use std::collections::BTreeMap;
use std::fmt::Write;

/// How steps are laid out when several columns are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Columns {
    /// One column per report (policies or profiles side by side); the
    /// reports run the same scenario, so their steps line up by number.
    PerReport,
    /// One report, one column per task: a step is written in the column of
    /// the task that made it (an interleaving read as CPU0 / CPU1).
    PerTask,
}

/// A step and the standalone expectations judged right after it.
struct StepView<'a> {
    step: &'a StepReport,
    after: Vec<&'a Check>,
}

/// Steps in order; expectations before the first step are returned apart.
fn steps(r: &Report) -> (Vec<&Check>, Vec<StepView<'_>>) {
    let mut before = Vec::new();
    let mut out: Vec<StepView> = Vec::new();
    for e in &r.entries {
        match e {
            Entry::Step(s) => out.push(StepView { step: s, after: Vec::new() }),
            Entry::Expect(c) => match out.last_mut() {
                Some(s) => s.after.push(c),
                None => before.push(c),
            },
            Entry::Setting { .. } | Entry::Task { .. } => {}
        }
    }
    (before, out)
}

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn check_li(out: &mut String, c: &Check) {
    let cls = match c.status {
        scenario::Status::Pass => "pass",
        scenario::Status::Fail => "fail",
        scenario::Status::Skip => "skip",
        scenario::Status::Xfail => "xfail",
        scenario::Status::Xpass => "xpass",
    };
    let detail = c.detail.as_deref().map(|d| format!(" — {}", escape(d))).unwrap_or_default();
    let _ = writeln!(
        out,
        r#"<li class="check {cls}">{} {}{detail} <span class="where">line {}</span></li>"#,
        c.status.mark(),
        escape(&c.text),
        c.line
    );
}

/// What one report says about one step: the line, the result, the kernel's
/// decisions, the counter deltas, the expectations, and the state diagram.
fn step_block(out: &mut String, s: &StepView, before: Option<&StepView>, names: &BTreeMap<u32, String>) {
    let st = s.step;
    let _ = writeln!(
        out,
        r#"<div class="line"><span class="n">[{}]</span> <code>{}</code> <span class="result">→ {}</span></div>"#,
        st.step,
        escape(&st.text),
        escape(&st.result)
    );
    if !st.kernel.is_empty() {
        out.push_str("<ul class=\"kernel\">");
        for k in &st.kernel {
            let _ = write!(out, "<li>{}</li>", escape(k));
        }
        out.push_str("</ul>\n");
    }
    if !st.deltas.is_empty() {
        out.push_str("<ul class=\"deltas\">");
        for d in &st.deltas {
            let _ = write!(out, "<li>Δ {}</li>", escape(d));
        }
        out.push_str("</ul>\n");
    }
    if !st.checks.is_empty() || !s.after.is_empty() {
        out.push_str("<ul class=\"checks\">");
        for c in st.checks.iter().chain(s.after.iter().copied()) {
            check_li(out, c);
        }
        out.push_str("</ul>\n");
    }
    if let Some(state) = &st.state {
        let prev = before.and_then(|b| b.step.state.as_ref());
        out.push_str(&diagram::render(state, prev, names));
        out.push('\n');
    }
}

fn header(out: &mut String, title: &str, reports: &[(String, &Report)]) {
    let _ = writeln!(out, "<header><h1>{}</h1>", escape(title));
    for (label, r) in reports {
        let knobs: Vec<String> = r.knobs.iter().map(|k| format!("{}={}", k.knob, k.value)).collect();
        let status = format!("{:?}", r.status).to_lowercase();
        let _ = writeln!(
            out,
            r#"<div class="run {status}">{}{} backend · {} {} · <span class="status">{status}</span>: {} passed, {} failed, {} skipped{}</div>"#,
            if reports.len() > 1 { format!("<b>{}</b> · ", escape(label)) } else { String::new() },
            escape(&r.backend),
            escape(&r.profile),
            escape(&knobs.join(" ")),
            r.summary.passed,
            r.summary.failed,
            r.summary.skipped,
            r.skip_reason.as_deref().map(|s| format!(" ({})", escape(s))).unwrap_or_default(),
        );
    }
    out.push_str(
        r##"<nav><button id="prev" title="previous step (←, k)">◀</button> <input id="slider" type="range" min="0" max="0" value="0"> <button id="next" title="next step (→, j)">▶</button> <span id="where"></span> · <a href="#all">all steps</a></nav></header>
"##,
    );
}

/// The page for `reports` (one, or several of the same scenario side by
/// side), titled `title`.
pub fn page(title: &str, reports: &[(String, &Report)], columns: Columns) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n<script>{ERRORS}</script>\n",
        escape(title)
    );
    out.push_str(DEFS);
    header(&mut out, title, reports);
    let per: Vec<(Vec<&Check>, Vec<StepView>)> = reports.iter().map(|(_, r)| steps(r)).collect();
    let n = per.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    out.push_str("<main>\n");
    let setup: Vec<&Check> = per.iter().flat_map(|(b, _)| b.iter().copied()).collect();
    if !setup.is_empty() {
        out.push_str("<ul class=\"checks setup\">");
        for c in setup {
            check_li(&mut out, c);
        }
        out.push_str("</ul>\n");
    }
    let tasks: Vec<String> = match columns {
        Columns::PerTask => {
            let mut t: Vec<String> = Vec::new();
            for s in per.first().map(|(_, s)| s.as_slice()).unwrap_or_default() {
                if !t.contains(&s.step.task) {
                    t.push(s.step.task.clone());
                }
            }
            t
        }
        Columns::PerReport => Vec::new(),
    };
    for i in 0..n {
        let _ = writeln!(out, r#"<section class="step" data-step="{}">"#, i + 1);
        match columns {
            Columns::PerReport => {
                let _ = writeln!(out, r#"<div class="cols" style="--cols:{}">"#, reports.len());
                for ((label, r), (_, ss)) in reports.iter().zip(&per) {
                    out.push_str("<div class=\"col\">");
                    if reports.len() > 1 {
                        let _ = write!(out, "<h3>{}</h3>", escape(label));
                    }
                    match ss.get(i) {
                        Some(s) => step_block(&mut out, s, i.checked_sub(1).and_then(|j| ss.get(j)), &r.task_names),
                        None => out.push_str("<p class=\"more\">(no such step in this run)</p>"),
                    }
                    out.push_str("</div>\n");
                }
                out.push_str("</div>\n");
            }
            Columns::PerTask => {
                let ss = &per[0].1;
                let s = &ss[i];
                let _ = writeln!(out, r#"<div class="cols" style="--cols:{}">"#, tasks.len());
                for t in &tasks {
                    let _ = write!(out, "<div class=\"col\"><h3>{}</h3>", escape(t));
                    for (j, earlier) in ss.iter().enumerate().take(i + 1) {
                        if &earlier.step.task == t {
                            let cls = if j == i { "now" } else { "past" };
                            let _ = write!(
                                out,
                                "<div class=\"{cls}\">[{}] <code>{}</code></div>",
                                earlier.step.step,
                                escape(&earlier.step.text)
                            );
                        }
                    }
                    out.push_str("</div>\n");
                }
                out.push_str("</div>\n<div class=\"col\">");
                step_block(&mut out, s, i.checked_sub(1).and_then(|j| ss.get(j)), &reports[0].1.task_names);
                out.push_str("</div>\n");
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</main>\n");
    let _ = write!(out, "<script>{NAV}</script>\n</body></html>\n");
    out
}

/// The page for one report.
pub fn report_page(r: &Report) -> String {
    page(&r.file, &[(r.backend.clone(), r)], Columns::PerReport)
}

const DEFS: &str = r##"<svg width="0" height="0" style="position:absolute"><defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs></svg>
"##;

const STYLE: &str = r#"
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:6px 12px;z-index:1}
h1{font-size:16px;margin:0 0 4px}
h3{margin:4px 0;font-size:13px}
.run.fail .status{color:#b00;font-weight:bold}.run.pass .status{color:#070}
nav{margin-top:4px}#slider{width:40%;vertical-align:middle}
main{padding:8px 12px}
.cols{display:grid;grid-template-columns:repeat(var(--cols),minmax(0,1fr));gap:12px}
.col{overflow-x:auto}
.line code{font-size:14px;font-weight:600}.result{color:#444}.n{color:#888}
ul{margin:4px 0 4px 16px;padding:0}ul.kernel li{color:#035}ul.deltas li{color:#555}
li.check{list-style:none;margin-left:-14px}.check.fail{color:#b00;font-weight:bold}.check.pass{color:#070}.check.skip{color:#888}
.where{color:#999;font-size:11px}.more{fill:#777;color:#777;font-style:italic}
.past{color:#999}.now{font-weight:bold}
svg.state{background:#fff;border:1px solid #ddd;margin-top:6px}
svg text{font:11px monospace;fill:#222}svg .colhead{font:bold 12px sans-serif}
.task rect{fill:#e8eef8;stroke:#89a}.vma rect{fill:#f4f4f4;stroke:#bbb}
.folio rect{fill:#fff8e8;stroke:#c93}.holder rect{fill:#eef8ee;stroke:#7a7}.pool rect{fill:#f0f0ff;stroke:#99c}
.chg rect{stroke:#e00;stroke-width:2.5}.entry.chg text,.task.chg text{fill:#c00;font-weight:bold}
.arrow{fill:none;stroke:#777;stroke-width:1.2}.arrow.w{stroke:#26a}.arrow.held{stroke:#393;stroke-dasharray:4 3}.arrow.chg{stroke:#e00;stroke-width:2}
.entry.swap text{fill:#850}
"#;

/// Runs before anything else, so that an error anywhere is recorded.
const ERRORS: &str =
    r#"window.addEventListener('error',function(e){document.documentElement.setAttribute('data-script-error',String(e.message));});"#;

const NAV: &str = r#"
(function(){
  var steps=[].slice.call(document.querySelectorAll('section.step'));
  var slider=document.getElementById('slider'), where=document.getElementById('where');
  var cur=0;
  slider.max=Math.max(0,steps.length-1);
  function show(i){
    if(!steps.length){where.textContent='no steps';return;}
    cur=Math.max(0,Math.min(steps.length-1,i));
    var all=location.hash==='#all';
    steps.forEach(function(s,j){s.hidden=!all&&j!==cur;});
    slider.value=cur;
    where.textContent='step '+(cur+1)+' of '+steps.length;
  }
  document.addEventListener('keydown',function(e){
    if(e.key==='ArrowRight'||e.key==='j'){show(cur+1);}
    else if(e.key==='ArrowLeft'||e.key==='k'){show(cur-1);}
    else if(e.key==='Home'){show(0);}
    else if(e.key==='End'){show(steps.length-1);}
  });
  slider.addEventListener('input',function(){show(+slider.value);});
  document.getElementById('prev').addEventListener('click',function(){show(cur-1);});
  document.getElementById('next').addEventListener('click',function(){show(cur+1);});
  function fromHash(){var m=/^#step-(\d+)$/.exec(location.hash);show(m?(+m[1]-1):cur);}
  window.addEventListener('hashchange',fromHash);
  fromHash();
  if(location.hash==='#selftest'){
    var ok=true, at=-1;
    function visible(){return steps.map(function(s,j){return s.hidden?-1:j;}).filter(function(j){return j>=0;});}
    for(var i=1;i<steps.length&&ok;i++){
      document.dispatchEvent(new KeyboardEvent('keydown',{key:'ArrowRight'}));
      var v=visible(); if(v.length!==1||v[0]!==i){ok=false;at=i;}
    }
    if(ok&&steps.length>1){
      slider.value=0; slider.dispatchEvent(new Event('input'));
      var v0=visible(); if(v0.length!==1||v0[0]!==0){ok=false;at=0;}
    }
    document.body.setAttribute('data-selftest',ok?('pass '+steps.length):('fail at step '+(at+1)));
  }
})();
"#;
