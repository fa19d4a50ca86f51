//! One state as an SVG diagram: tasks → VMAs → page-table entries on the
//! left, folios in the middle, the holders of other references (GUP
//! handles, pipes, io_uring, page cache, swap cache) and the hugetlb pools on
//! the right, with an arrow for every mapping and every held reference.
//! What changed since the previous state is drawn in the change colour.
//!
//! Plain generated SVG: the picture is a function of the state, needs no
//! script to appear, and prints.

use crate::escape;
use mm::view::{EntryRun, FolioView, HolderView, StateView, TaskView, VmaView};
use std::collections::BTreeMap;
use std::fmt::Write;

const ROW: u32 = 16;
const LEFT_W: u32 = 540;
const FOLIO_X: u32 = 620;
const FOLIO_W: u32 = 300;
const FOLIO_H: u32 = 50;
const HOLDER_X: u32 = 990;
const HOLDER_W: u32 = 360;
const WIDTH: u32 = HOLDER_X + HOLDER_W + 10;
/// Entry runs drawn per VMA before "… N more" (a page stays small).
const MAX_RUNS: usize = 48;
/// Folio boxes drawn before "… N more".
const MAX_FOLIOS: usize = 160;

/// Keys of things that can change between two states.
fn entry_key(pid: u32, e: &EntryRun) -> (u32, u64, String) {
    (pid, e.addr, e.level.clone())
}

/// The SVG for `now`, with what differs from `before` highlighted; tasks
/// are labelled with the scenario's names where `names` has them.
pub fn render(now: &StateView, before: Option<&StateView>, names: &BTreeMap<u32, String>) -> String {
    let old_folios: BTreeMap<u32, &FolioView> = before.map(|b| b.folios.iter().map(|f| (f.id, f)).collect()).unwrap_or_default();
    let old_entries: BTreeMap<(u32, u64, String), &EntryRun> = before
        .map(|b| {
            b.tasks.iter().flat_map(|t| t.vmas.iter().flat_map(move |v| v.entries.iter().map(move |e| (entry_key(t.pid, e), e)))).collect()
        })
        .unwrap_or_default();
    let old_holders: BTreeMap<&str, &HolderView> =
        before.map(|b| b.holders.iter().map(|h| (h.label.as_str(), h)).collect()).unwrap_or_default();
    let old_tasks: BTreeMap<u32, &TaskView> = before.map(|b| b.tasks.iter().map(|t| (t.pid, t)).collect()).unwrap_or_default();
    // Against nothing (the first step), everything is new.
    let changed = |is_new: bool| if is_new { " chg" } else { "" };

    let mut body = String::new();
    let mut arrows = String::new();
    // Folio boxes first: their positions are the arrows' targets.
    let mut folio_y: BTreeMap<u32, u32> = BTreeMap::new();
    let mut y = 28;
    let _ = writeln!(body, r#"<text x="{FOLIO_X}" y="16" class="colhead">folios</text>"#);
    for f in now.folios.iter().take(MAX_FOLIOS) {
        folio_y.insert(f.id, y);
        let cls = changed(old_folios.get(&f.id) != Some(&f));
        let kind = if f.hugetlb { format!("hugetlb {}", size_name(f.size)) } else { format!("{} {}", f.kind, size_name(f.size)) };
        let count = if f.count > 1 { format!(" ×{}", f.count) } else { String::new() };
        let pin = if f.size > 4096 { format!(" pin {}", f.pincount) } else { String::new() };
        let entire = if f.entire_mapcount > 0 { format!(" entire {}", f.entire_mapcount) } else { String::new() };
        let pages = f.size / 4096;
        let flags = [(f.maybe_mapped_shared, "maybe-shared"), (f.dirty, "dirty")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            body,
            r#"<g class="folio{cls}" data-folio="{id}"><rect x="{FOLIO_X}" y="{y}" width="{FOLIO_W}" height="{FOLIO_H}" rx="4"/><text x="{tx}" y="{l1}">folio #{id}{count} · {kind} · pfn {pfn:#x}</text><text x="{tx}" y="{l2}">ref {r} · map {m}{entire}{pin}</text><text x="{tx}" y="{l3}">AE {ae}/{pages} {flags}</text></g>"#,
            id = f.id,
            tx = FOLIO_X + 6,
            l1 = y + 14,
            l2 = y + 29,
            l3 = y + 44,
            kind = escape(&kind),
            pfn = f.pfn,
            r = f.refcount,
            m = f.mapcount,
            ae = f.anon_exclusive_pages,
        );
        y += FOLIO_H + 8;
    }
    if now.folios.len() > MAX_FOLIOS {
        let _ = writeln!(
            body,
            r#"<text x="{FOLIO_X}" y="{}" class="more">… {} more folio groups</text>"#,
            y + 12,
            now.folios.len() - MAX_FOLIOS
        );
        y += 20;
    }
    let folios_bottom = y;

    // Tasks, VMAs, entries.
    let mut y = 28;
    let _ = writeln!(body, r#"<text x="10" y="16" class="colhead">tasks · VMAs · page-table entries</text>"#);
    for t in &now.tasks {
        let cls = changed(old_tasks.get(&t.pid).is_none_or(|o| o.state != t.state || o.has_pinned != t.has_pinned));
        let pinned = if t.has_pinned { " · MMF_HAS_PINNED" } else { "" };
        let name = names.get(&t.pid).map(|n| format!("{} · ", escape(n))).unwrap_or_default();
        let _ = writeln!(
            body,
            r#"<g class="task{cls}"><rect x="6" y="{ry}" width="{LEFT_W}" height="{ROW}" rx="3"/><text x="12" y="{ty}" class="taskname">{name}pid {pid} · mm {mm} · {state}{pinned}</text></g>"#,
            ry = y,
            ty = y + 12,
            pid = t.pid,
            mm = t.mm,
            state = escape(&t.state),
        );
        y += ROW + 2;
        for v in &t.vmas {
            y = vma_rows(&mut body, &mut arrows, v, t.pid, y, &folio_y, &old_entries);
        }
        y += 8;
    }
    let tasks_bottom = y;

    // Holders and pools.
    let mut y = 28;
    let _ = writeln!(body, r#"<text x="{HOLDER_X}" y="16" class="colhead">other references · pools</text>"#);
    for h in &now.holders {
        let cls = changed(old_holders.get(h.label.as_str()) != Some(&h));
        let n: u64 = h.folios.iter().map(|(_, n)| n).sum();
        let _ = writeln!(
            body,
            r#"<g class="holder {kind}{cls}"><rect x="{HOLDER_X}" y="{y}" width="{HOLDER_W}" height="34" rx="4"/><text x="{tx}" y="{l1}">{kindt}</text><text x="{tx}" y="{l2}">{label} · {n} page ref{s}</text></g>"#,
            kind = h.kind.replace(' ', "-"),
            kindt = escape(&h.kind),
            label = escape(&h.label),
            tx = HOLDER_X + 6,
            l1 = y + 14,
            l2 = y + 28,
            s = if n == 1 { "" } else { "s" },
        );
        for (fid, _) in &h.folios {
            if let Some(&fy) = folio_y.get(fid) {
                arrow(&mut arrows, HOLDER_X, y + 17, FOLIO_X + FOLIO_W, fy + FOLIO_H / 2, &format!("held{cls}"));
            }
        }
        y += 42;
    }
    for p in &now.pools {
        let old = before.and_then(|b| b.pools.iter().find(|o| o.size == p.size));
        let cls = changed(old != Some(p));
        let _ = writeln!(
            body,
            r#"<g class="pool{cls}"><rect x="{HOLDER_X}" y="{y}" width="{HOLDER_W}" height="20" rx="3"/><text x="{tx}" y="{ty}">hugetlb {size}: nr {nr} · free {free} · resv {resv} · surplus {surplus}</text></g>"#,
            tx = HOLDER_X + 6,
            ty = y + 14,
            size = p.size,
            nr = p.nr,
            free = p.free,
            resv = p.resv,
            surplus = p.surplus,
        );
        y += 26;
    }
    if now.swap_slots > 0 {
        let _ = writeln!(body, r#"<text x="{HOLDER_X}" y="{}" class="more">swap slots in use: {}</text>"#, y + 14, now.swap_slots);
        y += 20;
    }
    let height = folios_bottom.max(tasks_bottom).max(y) + 10;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" class="state">{arrows}{body}</svg>"#
    )
}

fn vma_rows(
    body: &mut String,
    arrows: &mut String,
    v: &VmaView,
    pid: u32,
    mut y: u32,
    folio_y: &BTreeMap<u32, u32>,
    old_entries: &BTreeMap<(u32, u64, String), &EntryRun>,
) -> u32 {
    let flags = if v.flags.is_empty() { String::new() } else { format!(" · {}", v.flags.join(" ")) };
    let _ = writeln!(
        body,
        r#"<g class="vma"><rect x="18" y="{y}" width="{w}" height="{ROW}" rx="2"/><text x="24" y="{ty}">VMA {s:#x}–{e:#x} {prot} {share} {backing}{flags}</text></g>"#,
        w = LEFT_W - 12,
        ty = y + 12,
        s = v.start,
        e = v.end,
        prot = v.prot,
        share = if v.shared { "shared" } else { "private" },
        backing = escape(&v.backing),
        flags = escape(&flags),
    );
    y += ROW + 1;
    for e in v.entries.iter().take(MAX_RUNS) {
        let cls = if old_entries.get(&entry_key(pid, e)) != Some(&e) { " chg" } else { "" };
        let count = if e.count > 1 { format!(" ×{}", e.count) } else { String::new() };
        let what = match e.folio {
            Some(f) => {
                let bits: Vec<&str> =
                    [(e.write, "W"), (e.dirty, "D"), (e.special, "special")].iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
                let bits = if bits.is_empty() { "R/O".to_string() } else { bits.join(" ") };
                format!("→ folio #{f} page {} · {bits}", e.page)
            }
            None => format!("swap entry{}", if e.swap_exclusive { " · exclusive" } else { "" }),
        };
        let _ = writeln!(
            body,
            r#"<g class="entry {kind}{cls}"><text x="34" y="{ty}">{level}{count} {addr:#x} {what}</text></g>"#,
            kind = e.kind,
            ty = y + 12,
            level = e.level,
            addr = e.addr,
            what = escape(&what),
        );
        if let Some(&fy) = e.folio.as_ref().and_then(|f| folio_y.get(f)) {
            let kind = if e.write { "map w" } else { "map" };
            arrow(arrows, LEFT_W + 6, y + 8, FOLIO_X, fy + FOLIO_H / 2, &format!("{kind}{cls}"));
        }
        y += ROW;
    }
    if v.entries.len() > MAX_RUNS {
        let _ = writeln!(body, r#"<text x="34" y="{}" class="more">… {} more entry runs</text>"#, y + 12, v.entries.len() - MAX_RUNS);
        y += ROW;
    }
    y + 4
}

fn arrow(out: &mut String, x1: u32, y1: u32, x2: u32, y2: u32, class: &str) {
    let mid = (x1 + x2) / 2;
    let _ = writeln!(out, r#"<path class="arrow {class}" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" marker-end="url(#head)"/>"#);
}

fn size_name(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{}G", b >> 30),
        b if b >= 1 << 20 => format!("{}M", b >> 20),
        b => format!("{}K", b >> 10),
    }
}
