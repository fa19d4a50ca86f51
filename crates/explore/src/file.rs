//! A scenario file's `race { }` block as a [`Race`].
//!
//! The lines before the block run on the model backend as in `cowlab run`
//! (the setup); each operation in the block becomes one racing task; the
//! expectations after the block are judged, with the scenario runner's own
//! judge, in every state where all tasks are done — plain ones in all of
//! them, `… in some interleaving` in at least one. Lines after the block
//! other than expectations are not run (the explorer stops at the race).

use crate::model::{Expectation, Race};
use crate::task::{Machine, Op, Outcome, TaskSpec};
use mm::{GupFlags, Kernel, Pid, PAGE_SIZE};
use scenario::ast::{self, Advice, DataSpec, Foll, GupKind, ItemKind};
use scenario::model::ModelBackend;
use scenario::{Bindings, Loaded, RunOptions, Status};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds the race of a loaded scenario, running its setup with `opts`.
pub fn race_of(l: &Loaded, opts: &RunOptions) -> Result<Race, String> {
    let items = &l.scenario.items;
    let begin = items.iter().position(|i| matches!(i.kind, ItemKind::RaceBegin)).ok_or("the scenario has no `race { }` block")?;
    let end = begin + items[begin..].iter().position(|i| matches!(i.kind, ItemKind::RaceEnd)).ok_or("the race block is not closed")?;
    if items[end + 1..].iter().any(|i| matches!(i.kind, ItemKind::RaceBegin)) {
        return Err("cowlab explore takes one race block per file".into());
    }
    let setup = ast::Scenario { items: items[..begin].to_vec() };
    let checked = scenario::check::check(&setup).map_err(|d| d.iter().map(|d| d.render(&l.source)).collect::<String>())?;
    let mut be = ModelBackend::new();
    let (report, bindings) = scenario::run::run_bound(&l.source, &setup, &checked, &mut be, opts)
        .map_err(|d| d.iter().map(|d| d.render(&l.source)).collect::<String>())?;
    // Every expectation of the setup held (an `xfail` marker is about
    // the whole file, not the setup).
    if !matches!(report.status, Status::Pass | Status::Xpass) {
        return Err(format!("the setup before the race did not pass:\n{}", report.render(false)));
    }
    let init: Kernel = be.kernel().clone();
    let pid_of = |name: &str| bindings.tasks.get(name).map(|t| Pid(t.0)).ok_or_else(|| format!("task {name} is not running"));
    let region = |r: &ast::Range| -> Result<(u64, u64), String> {
        let &(addr, len) = bindings.regions.get(&r.name.value).ok_or_else(|| format!("`{}` is not a region", r.name.value))?;
        let off = r.off();
        Ok((addr + off, r.len.as_ref().map_or(len.saturating_sub(off), |l| l.value)))
    };
    let mut tasks = Vec::new();
    let mut children: Vec<(usize, String)> = Vec::new();
    let mut watch = Vec::new();
    for item in &items[begin + 1..end] {
        let ItemKind::Step(step) = &item.kind else { continue };
        let pid = pid_of(&step.task.value)?;
        let line = item.line;
        let op = match &step.op {
            ast::Op::Fork(c) => {
                children.push((tasks.len(), c.value.clone()));
                Op::Fork
            }
            ast::Op::Write(r, DataSpec::Fill(b)) => {
                let (addr, len) = region(r)?;
                Op::Write { addr, len, fill: *b }
            }
            ast::Op::Gup { kind: kind @ (GupKind::GetUserPagesFast | GupKind::PinUserPagesFast), range, flags } => {
                let (addr, len) = region(range)?;
                let mut f = if *kind == GupKind::PinUserPagesFast { GupFlags::PIN } else { GupFlags::GET };
                for fl in flags {
                    match fl.value {
                        Foll::Write => f.write = true,
                        Foll::Longterm => f.longterm = true,
                        Foll::Force => f.force = true,
                    }
                }
                Op::GupFast { addr, nr: len.div_ceil(PAGE_SIZE), flags: f }
            }
            ast::Op::Madvise(r, a) => {
                let (addr, len) = region(r)?;
                match a.value {
                    Advice::Dontneed => Op::DontNeed { addr, len },
                    Advice::Pageout => Op::PageOut { addr, len },
                    Advice::Collapse => Op::Collapse { addr: addr.next_multiple_of(mm::PMD_SIZE) },
                    other => return Err(format!("line {line}: madvise {other} has no step machine")),
                }
            }
            other => return Err(format!("line {line}: `{}` cannot be explored in a race", other.keyword())),
        };
        for a in op.pages() {
            if !watch.contains(&a) && watch.len() < 8 {
                watch.push(a);
            }
        }
        tasks.push(TaskSpec { pid, op });
    }
    let mut names: BTreeMap<Pid, String> = BTreeMap::new();
    for (n, t) in &bindings.tasks {
        names.insert(Pid(t.0), n.clone());
    }
    let mut expectations = Vec::new();
    for item in &items[end + 1..] {
        let (e, in_some) = match &item.kind {
            ItemKind::Expect(e) => (e.clone(), false),
            ItemKind::ExpectSome(e) => (e.clone(), true),
            _ => continue,
        };
        let text = l.source.snippet(item.span).to_string();
        let src = l.source.clone();
        let item = item.clone();
        let base = bindings.clone();
        let children = children.clone();
        let check = move |k: &Kernel, m: &[Machine]| -> Result<(), String> {
            let mut b: Bindings = base.clone();
            for (task, name) in &children {
                if let Some(Machine::Done(Outcome::Forked(c))) = m.get(*task) {
                    b.tasks.insert(name.clone(), scenario::backend::TaskId(c.0));
                }
            }
            let mut be = ModelBackend::from_kernel(k.clone());
            let c = scenario::run::judge(&src, &item, &e, &mut be, &b);
            match c.status {
                Status::Pass => Ok(()),
                _ => Err(c.detail.unwrap_or_else(|| "does not hold".into())),
            }
        };
        expectations.push(Expectation { text, in_some, check: Arc::new(check) });
    }
    Ok(Race { name: l.source.name.clone(), init, tasks, names, watch, expectations, roots: Vec::new(), claimed: Default::default() })
}
