//! GUP-fast: the lockless page-table walker (mm/gup.c: gup_fast_fallback(),
//! gup_fast(), gup_fast_pgd_range() … gup_fast_pte_range(),
//! gup_fast_pmd_leaf(), gup_fast_pud_leaf()).
//!
//! # Concurrency protocol
//!
//! GUP-fast takes no lock. It reads each entry once (B1), takes its
//! references (B3), re-reads the entry and bails if it changed (B4), and
//! only then, for a read-only entry, looks at PageAnonExclusive (B5). A
//! sharer that clears the entry or AE first (A1–A3) either sees the new pin
//! and backs off, or makes GUP-fast see the change. fork cannot follow that
//! protocol (it write-protects in place, after checking for pins), so for
//! FOLL_PIN GUP-fast samples `mm->write_protect_seq` before the walk and
//! rechecks it after: a fork that ran in between makes it drop everything.
//!
//! What the lockless walk leaves is taken by the slow path, which holds the
//! mmap lock for reading; a fork holds it for writing from its first step
//! to its last (crate::mmap_lock). So the fallback is a state of its own,
//! [`GupFastState::Slow`], and [`Kernel::gup_fast_step`] refuses to run it
//! while the Kernel records a fork of this mm in progress: the step
//! answers [`GupFastStep::WaitingForMmapLock`] and changes nothing. The
//! slow path itself cannot be entered without a read guard of the mm's
//! mmap lock, which cannot be had during a fork, so no driver can put a
//! slow GUP inside a half-done fork.
//!
//! The walker is a step machine: [`GupFastState`] names what has been read
//! without a lock and what must still be rechecked. One call of
//! [`Kernel::gup_fast_step`] is one atomic step (B1, B3, then B4+B5 for an
//! entry), so an explorer can interleave it with fork, zap, collapse and
//! swap-out; a sequential run drives it to the end, taking the rest of a
//! PTE table at a time (`gup_fast_pte_table()`: the same grabs, bail and
//! next state as those steps, with nothing to interleave). Within a PTE
//! table, B4 also re-reads the PMD the walk came through: a THP collapse
//! may have taken the table away while its entries still look the same.
//! Left out: interrupts and the page-table freeing they block (the model
//! never frees a table under a walker), architecture vetoes other than
//! protection keys, P2PDMA, secretmem, long-term placement (every folio is
//! long-term pinnable).

use crate::events::EventKind;
use crate::folio::{FolioId, MmId, HUGE_ZERO_FOLIO};
use crate::gup::{GupFlags, PageList};
use crate::kernel::Kernel;
use crate::mmap_lock::MmapReadGuard;
use crate::pgtable::{Entry, Leaf, Level, PmdVal, PteSlot};
use crate::types::*;
use crate::vma::Vma;

/// Where a GUP-fast call stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GupFastState {
    /// Nothing done yet: flag and range checks, write_protect_seq sample.
    Begin,
    /// Next: read the entry covering `addr` and grab its folio, walking down
    /// from the PGD.
    Walk { addr: u64 },
    /// Next: the PTE at `addr`, in the PTE table whose PMD was already read
    /// for the previous address (`gup_fast_pte_range()`'s loop).
    PteRange { addr: u64 },
    /// The entry `leaf` was read without a lock (B1); next: grab `refs`
    /// references on its folio (B3, `try_grab_folio_fast()`).
    Read { addr: u64, leaf: Leaf, folio: FolioId, page: u64, refs: u64 },
    /// References taken on the folio of `leaf` (read without a lock) for
    /// `refs` pages from `addr`; next: re-read the entry and check AE.
    Grabbed { addr: u64, leaf: Leaf, folio: FolioId, page: u64, refs: u64 },
    /// The lockless walk is over: recheck write_protect_seq.
    End,
    /// The slow path takes the rest of the range, under the mmap lock: the
    /// step waits while a fork of this mm is in progress.
    Slow,
    /// Finished; `pages` holds the result.
    Done,
}

/// What one call of [`Kernel::gup_fast_step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GupFastStep {
    /// One atomic step ran; the call goes on.
    Ran,
    /// The next step is the slow-path fallback and a fork of this mm holds
    /// its mmap lock for writing: nothing happened. Step the fork to its
    /// end first.
    WaitingForMmapLock,
    /// The call is over (`result` is set); stepping again changes nothing.
    Done,
}

/// One GUP-fast call in progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GupFast {
    pub pid: Pid,
    pub mm: MmId,
    pub start: u64,
    pub nr: u64,
    pub flags: GupFlags,
    pub state: GupFastState,
    /// Pages collected so far.
    pub pages: PageList,
    /// `write_protect_seq` as sampled at the start (FOLL_PIN only).
    pub seq: Option<u64>,
    /// The PMD read on the way to the current PTE table, for the recheck
    /// after each grab in it (`gup_fast_pte_range()`'s `pmd` argument).
    pub pmd: Option<PmdVal>,
    /// How the call ended, once `Done`.
    pub result: Option<SysResult<()>>,
}

impl GupFast {
    /// The kernel function the next step plays.
    pub fn next_func(&self) -> &'static str {
        match &self.state {
            GupFastState::Begin | GupFastState::End => "gup_fast",
            GupFastState::Walk { .. } => "gup_fast_pgd_range",
            GupFastState::PteRange { .. } => "gup_fast_pte_range",
            GupFastState::Read { .. } => "try_grab_folio_fast",
            GupFastState::Grabbed { leaf, .. } => match leaf.level {
                Level::Pte => "gup_fast_pte_range",
                Level::Pmd => "gup_fast_pmd_leaf",
                Level::Pud => "gup_fast_pud_leaf",
            },
            GupFastState::Slow => "__get_user_pages",
            GupFastState::Done => "",
        }
    }

    /// Between `local_irq_save()` and `local_irq_restore()` in `gup_fast()`:
    /// the walk holds off IPIs such as `tlb_remove_table_sync_one()`'s.
    pub fn irqs_disabled(&self) -> bool {
        matches!(
            self.state,
            GupFastState::Walk { .. } | GupFastState::PteRange { .. } | GupFastState::Read { .. } | GupFastState::Grabbed { .. }
        )
    }

    /// References this call holds that no kernel structure records yet:
    /// the pages collected (a stretch of one folio's pages as one count)
    /// and the folio grabbed but not yet rechecked, as (folio, count,
    /// FOLL_PIN).
    pub fn held(&self) -> Vec<(FolioId, u64, bool)> {
        let mut out: Vec<(FolioId, u64, bool)> = self.pages.folio_stretches().map(|(f, n)| (f, n, self.flags.pin)).collect();
        if let GupFastState::Grabbed { folio, refs, .. } = self.state {
            out.push((folio, refs, self.flags.pin));
        }
        out
    }
}

/// What the lockless walk found for one address.
enum Walk {
    Found { leaf: Leaf, folio: FolioId, page: u64, refs: u64 },
    Bail(&'static str, &'static str),
}

impl Kernel {
    /// Starts a GUP-fast call (`gup_fast_fallback()`).
    pub fn gup_fast_begin(&self, pid: Pid, mm: MmId, start: u64, nr: u64, flags: GupFlags) -> GupFast {
        GupFast { pid, mm, start, nr, flags, state: GupFastState::Begin, pages: PageList::new(), seq: None, pmd: None, result: None }
    }

    /// Runs one atomic step. The slow-path fallback waits for the mmap
    /// lock: while a fork of this mm is half done that step is refused
    /// ([`GupFastStep::WaitingForMmapLock`]).
    pub fn gup_fast_step(&mut self, g: &mut GupFast) -> GupFastStep {
        match g.state.clone() {
            GupFastState::Begin => {
                // get_user_pages_fast() / pin_user_pages_fast():
                // is_valid_gup_args(); gup_fast_fallback() takes every
                // FOLL_* flag a caller may pass, FOLL_FORCE included
                // (what the walk cannot handle falls to the slow path).
                if let Err(e) = Kernel::is_valid_gup_args(g.flags) {
                    return self.gup_fast_finish(g, Err(e));
                }
                if g.flags.pin {
                    self.mm_mut(g.mm).has_pinned = true;
                }
                if g.nr.checked_mul(PAGE_SIZE).and_then(|l| g.start.checked_add(l)).is_none_or(|e| e > TASK_SIZE) {
                    return self.gup_fast_finish(g, Err(Errno::EFAULT.into()));
                }
                g.state = GupFastState::Walk { addr: g.start };
                if g.flags.pin && self.policy.gup_fast_seqcount {
                    let seq = self.mm(g.mm).write_protect_seq;
                    g.seq = Some(seq);
                    if seq % 2 == 1 {
                        self.event(g.pid, EventKind::Bail, "gup_fast", Some(g.start), || {
                            "write_protect_seq odd (fork in progress) → slow path".into()
                        });
                        g.state = GupFastState::End;
                    }
                }
                GupFastStep::Ran
            }
            GupFastState::Walk { addr } | GupFastState::PteRange { addr } => {
                let end = g.start + g.nr * PAGE_SIZE;
                // 5.8 (gup_cow_break): the lockless walk takes only writable
                // entries; the slow path decides per VMA whether to break COW.
                let walk_flags = if self.policy.gup_cow_break { g.flags.with_write() } else { g.flags };
                let walk = match g.state {
                    GupFastState::PteRange { .. } => self.gup_fast_pte_range(g.mm, addr, walk_flags),
                    _ => self.gup_fast_pgd_range(g.mm, addr, walk_flags, end),
                };
                match walk {
                    Walk::Bail(func, why) => {
                        self.event(g.pid, EventKind::Bail, func, Some(addr), || format!("{why} → slow path"));
                        g.state = GupFastState::End;
                    }
                    Walk::Found { leaf, folio, page, refs } => {
                        if matches!(g.state, GupFastState::Walk { .. }) {
                            g.pmd = Some(self.mm(g.mm).pt.pmd_val(addr));
                        }
                        g.state = GupFastState::Read { addr, leaf, folio, page, refs };
                    }
                }
                GupFastStep::Ran
            }
            GupFastState::Read { addr, leaf, folio, page, refs } => {
                g.state = if self.try_grab_folio(folio, refs, g.flags) {
                    GupFastState::Grabbed { addr, leaf, folio, page, refs }
                } else {
                    GupFastState::End
                };
                GupFastStep::Ran
            }
            GupFastState::Grabbed { addr, leaf, folio, page, refs } => {
                let pt = &self.mm(g.mm).pt;
                let now = pt.get(leaf.level, leaf.addr);
                let func = match leaf.level {
                    Level::Pte => "gup_fast_pte_range",
                    Level::Pmd => "gup_fast_pmd_leaf",
                    Level::Pud => "gup_fast_pud_leaf",
                };
                let pmd_moved = leaf.level == Level::Pte && g.pmd.is_some_and(|v| pt.pmd_val(addr) != v);
                let bail = if self.policy.gup_fast_pmd_recheck && pmd_moved {
                    Some("PMD changed under us (PTE table taken away)")
                } else if self.policy.gup_fast_recheck && now != Some(leaf.entry) {
                    Some("entry changed under us")
                } else {
                    self.gup_fast_folio_recheck(leaf.entry, folio, page, g.flags)
                };
                if let Some(why) = bail {
                    self.gup_put_folio(folio, refs, g.flags.pin);
                    self.event(g.pid, EventKind::Bail, func, Some(addr), || format!("{why} → slow path"));
                    g.state = GupFastState::End;
                    return GupFastStep::Ran;
                }
                g.pages.push_pages(folio, page, refs);
                self.work.add(refs);
                let next = addr + refs * PAGE_SIZE;
                g.state = if next >= g.start + g.nr * PAGE_SIZE {
                    GupFastState::End
                } else if leaf.level == Level::Pte && !next.is_multiple_of(PMD_SIZE) {
                    GupFastState::PteRange { addr: next }
                } else {
                    GupFastState::Walk { addr: next }
                };
                GupFastStep::Ran
            }
            GupFastState::End => {
                if let Some(seq) = g.seq {
                    if self.mm(g.mm).write_protect_seq != seq && !g.pages.is_empty() {
                        let pages = std::mem::take(&mut g.pages);
                        self.release_pages(&pages, true);
                        self.event(g.pid, EventKind::Bail, "gup_fast", Some(g.start), || {
                            "write_protect_seq changed (fork ran) → unpin all, slow path".into()
                        });
                    }
                }
                if g.pages.len() == g.nr {
                    return self.gup_fast_finish(g, Ok(()));
                }
                g.state = GupFastState::Slow;
                GupFastStep::Ran
            }
            GupFastState::Slow => {
                let Some(lock) = self.mmap_read_trylock(g.mm) else { return GupFastStep::WaitingForMmapLock };
                self.gup_fast_slow(&lock, g)
            }
            GupFastState::Done => GupFastStep::Done,
        }
    }

    /// The fallback: `__gup_longterm_locked()` for what the lockless walk
    /// left, with the mmap lock held for reading.
    fn gup_fast_slow(&mut self, lock: &MmapReadGuard, g: &mut GupFast) -> GupFastStep {
        let done = g.pages.len();
        let (more, err) = self.get_user_pages_slow(lock, g.pid, g.start + done * PAGE_SIZE, g.nr - done, g.flags);
        g.pages.append(&more);
        match err {
            None => self.gup_fast_finish(g, Ok(())),
            Some(e) => self.gup_fast_finish(g, Err(e)),
        }
    }

    fn gup_fast_finish(&mut self, g: &mut GupFast, r: SysResult<()>) -> GupFastStep {
        g.state = GupFastState::Done;
        g.result = Some(r);
        GupFastStep::Done
    }

    /// `gup_fast_fallback()` run to completion: the pages it got, in order,
    /// and the error that stopped it before `nr`, if any (the kernel
    /// returns the count of the pages it got when that is not zero).
    pub(crate) fn gup_fast_fallback(&mut self, pid: Pid, mm: MmId, start: u64, nr: u64, flags: GupFlags) -> crate::gup::PagesGot {
        let mut g = self.gup_fast_begin(pid, mm, start, nr, flags);
        loop {
            if let GupFastState::PteRange { addr } = g.state {
                self.gup_fast_pte_table(&mut g, addr);
                continue;
            }
            match self.gup_fast_step(&mut g) {
                GupFastStep::Ran => {}
                GupFastStep::Done => break,
                GupFastStep::WaitingForMmapLock => {
                    // Run to completion, this call would wait for a fork
                    // that only its own driver can finish.
                    self.release_pages(&g.pages, flags.pin);
                    return (PageList::new(), Some(SysError::Livelock));
                }
            }
        }
        let err = g.result.expect("set when done").err();
        if let Some(e @ SysError::Signal(_)) = err {
            // The slow path's fault had the OOM killer end this task:
            // what GUP-fast got goes back too.
            self.release_pages(&g.pages, flags.pin);
            return (PageList::new(), Some(e));
        }
        (g.pages, err)
    }

    /// The checks after the grab and the re-read of the entry (B5 and what
    /// precedes it in `gup_fast_pte_range()` and its PMD/PUD twins): the
    /// folio may be pinned this way, and a read-only entry's page need not
    /// be unshared. The bail's reason, if any.
    fn gup_fast_folio_recheck(&self, entry: Entry, folio: FolioId, page: u64, flags: GupFlags) -> Option<&'static str> {
        if !self.gup_fast_folio_allowed(folio, flags) {
            Some("file-backed folio for a writable long-term pin")
        } else if self.policy.gup_fast_ae_recheck
            && !entry.present().is_some_and(|p| p.write)
            && self.gup_must_unshare(None, flags, folio, page)
        {
            Some("read-only entry, gup_must_unshare")
        } else {
            None
        }
    }

    /// `gup_fast_pte_range()`'s loop over the rest of one PTE table, from
    /// [`GupFastState::PteRange`] at `addr`, in one go, for a call run to
    /// its end with nothing in between: it leaves what stepping `PteRange`,
    /// `Read` and `Grabbed` page by page would (the same references, taken
    /// page by page in the same order, the same bail with its event, the
    /// same next state), with the mm, the table and each VMA looked up
    /// once. The re-reads of B4 find what B1 read, as nothing ran in
    /// between. If the PMD no longer matches what the walk read (only a
    /// half-done collapse does that, which a run to the end never meets),
    /// it takes one step instead.
    fn gup_fast_pte_table(&mut self, g: &mut GupFast, addr: u64) {
        let pmd_end = align_down(addr, PMD_SIZE) + PMD_SIZE;
        let end = pmd_end.min(g.start + g.nr * PAGE_SIZE);
        let m = self.mm(g.mm);
        if g.pmd != Some(m.pt.pmd_val(addr)) {
            self.gup_fast_step(g);
            return;
        }
        let walk_flags = if self.policy.gup_cow_break { g.flags.with_write() } else { g.flags };
        // B1 for the run in one read (none without a table), so that the
        // folios can be grabbed while walking it.
        let slots: Vec<PteSlot> = m.pt.pte_run(addr, end).map(<[PteSlot]>::to_vec).unwrap_or_default();
        // The range of the VMA and its pte_access_permitted(), looked up
        // again only where the walk leaves it.
        let mut vma: Option<(u64, u64, bool)> = None;
        // Where and why the walk stops short of `end`.
        let mut stop: Option<(u64, &'static str, &'static str, Option<FolioId>)> = None;
        // The work counter is shared (an atomic add): counted once.
        let mut grabbed = 0;
        for (i, a) in (addr..end).step_by(PAGE_SIZE as usize).enumerate() {
            let permitted = match vma {
                Some((start, end, permitted)) if start <= a && a < end => permitted,
                _ => {
                    let v = self.mm(g.mm).vma(a);
                    let permitted = self.pte_access_permitted(v);
                    vma = v.map(|v| (v.start, v.end, permitted));
                    permitted
                }
            };
            let (folio, page) = match self.gup_fast_pte(slots.get(i).and_then(|s| s.get()), permitted, a, walk_flags) {
                Walk::Bail(func, why) => {
                    stop = Some((a, func, why, None));
                    break;
                }
                Walk::Found { leaf, folio, page, .. } => {
                    if let Some(why) = self.gup_fast_folio_recheck(leaf.entry, folio, page, g.flags) {
                        stop = Some((a, "gup_fast_pte_range", why, Some(folio)));
                        break;
                    }
                    (folio, page)
                }
            };
            if !self.try_grab_folio(folio, 1, g.flags) {
                self.work.add(grabbed);
                g.state = GupFastState::End;
                return;
            }
            g.pages.push_pages(folio, page, 1);
            grabbed += 1;
        }
        self.work.add(grabbed);
        g.state = match stop {
            None if end < g.start + g.nr * PAGE_SIZE => GupFastState::Walk { addr: end },
            None => GupFastState::End,
            Some((a, func, why, grabbed)) => {
                // A recheck fails after the grab, which is put back; if the
                // grab itself fails the walk ends without a word.
                if let Some(folio) = grabbed {
                    if !self.try_grab_folio(folio, 1, g.flags) {
                        g.state = GupFastState::End;
                        return;
                    }
                    self.gup_put_folio(folio, 1, g.flags.pin);
                }
                self.event(g.pid, EventKind::Bail, func, Some(a), || format!("{why} → slow path"));
                GupFastState::End
            }
        };
    }

    /// `gup_fast_pgd_range()`: the PGD and P4D levels are never empty below
    /// a mapped address in the model (4-level paging folds the P4D).
    fn gup_fast_pgd_range(&self, mm: MmId, addr: u64, flags: GupFlags, end: u64) -> Walk {
        self.gup_fast_p4d_range(mm, addr, flags, end)
    }

    fn gup_fast_p4d_range(&self, mm: MmId, addr: u64, flags: GupFlags, end: u64) -> Walk {
        self.gup_fast_pud_range(mm, addr, flags, end)
    }

    /// `gup_fast_pud_range()`: bail on an empty PUD, hand a PUD leaf to
    /// `gup_fast_pud_leaf()`, else descend.
    fn gup_fast_pud_range(&self, mm: MmId, addr: u64, flags: GupFlags, end: u64) -> Walk {
        let pt = &self.mm(mm).pt;
        if pt.pud_none(addr) {
            return Walk::Bail("gup_fast_pud_range", "PUD not present");
        }
        let a = align_down(addr, PUD_SIZE);
        if let Some(e) = pt.get(Level::Pud, a) {
            return self.gup_fast_pud_leaf(mm, Leaf { addr: a, level: Level::Pud, entry: e }, addr, flags, end);
        }
        self.gup_fast_pmd_range(mm, addr, flags, end)
    }

    /// `gup_fast_pmd_range()`: bail on an empty PMD, hand a PMD leaf to
    /// `gup_fast_pmd_leaf()`, else walk the PTE table.
    fn gup_fast_pmd_range(&self, mm: MmId, addr: u64, flags: GupFlags, end: u64) -> Walk {
        let pt = &self.mm(mm).pt;
        if pt.pmd_none(addr) {
            return Walk::Bail("gup_fast_pmd_range", "PMD not present");
        }
        let a = align_down(addr, PMD_SIZE);
        if let Some(e) = pt.get(Level::Pmd, a) {
            return self.gup_fast_pmd_leaf(mm, Leaf { addr: a, level: Level::Pmd, entry: e }, addr, flags, end);
        }
        self.gup_fast_pte_range(mm, addr, flags)
    }

    /// `pte_protnone()` and x86's `pte_access_permitted()` (and their
    /// PMD/PUD twins) for a present entry: a PROT_NONE entry is present but
    /// not accessible, and the protection key of the entry must allow the
    /// access under the task's PKRU. Any other present user entry is
    /// readable (x86 has no write-only or execute-only page), and the write
    /// bit is checked by the callers. The model's entries carry neither a
    /// protnone bit nor a key: mprotect() changes a VMA's protection and
    /// its entries together, so both follow from the VMA, read here.
    /// `vma` is the one covering the entry's address, if any.
    fn pte_access_permitted(&self, vma: Option<&Vma>) -> bool {
        vma.is_some_and(|v| v.is_accessible() && self.arch_vma_access_permitted(v))
    }

    /// `gup_fast_pte_range()` for one PTE: not present, PROT_NONE or
    /// denied by its protection key, not writable enough or special (the
    /// zero page) → bail.
    fn gup_fast_pte_range(&self, mm: MmId, addr: u64, flags: GupFlags) -> Walk {
        let m = self.mm(mm);
        self.gup_fast_pte(m.pt.get(Level::Pte, addr), self.pte_access_permitted(m.vma(addr)), addr, flags)
    }

    /// [`Kernel::gup_fast_pte_range`]'s checks of the PTE `entry` read at
    /// `addr`; `permitted` is [`Kernel::pte_access_permitted`] of its VMA.
    fn gup_fast_pte(&self, entry: Option<Entry>, permitted: bool, addr: u64, flags: GupFlags) -> Walk {
        let f = "gup_fast_pte_range";
        let Some(entry) = entry else { return Walk::Bail(f, "PTE none") };
        let Entry::Present(p) = entry else { return Walk::Bail(f, "swap entry") };
        if !permitted {
            return Walk::Bail(f, "PROT_NONE or key-protected PTE (pte_access_permitted)");
        }
        if flags.write && !p.write {
            return Walk::Bail(f, "write to a read-only PTE");
        }
        if p.special {
            return Walk::Bail(f, "special PTE (zero page)");
        }
        Walk::Found { leaf: Leaf { addr, level: Level::Pte, entry }, folio: p.folio, page: p.page, refs: 1 }
    }

    /// `gup_fast_pmd_leaf()`: grab all the requested pages of the leaf in one
    /// go; the huge zero PMD is special and bails.
    fn gup_fast_pmd_leaf(&self, mm: MmId, leaf: Leaf, addr: u64, flags: GupFlags, end: u64) -> Walk {
        self.gup_fast_leaf("gup_fast_pmd_leaf", mm, leaf, addr, flags, end)
    }

    /// `gup_fast_pud_leaf()`: as the PMD leaf, for 1 GiB hugetlb.
    fn gup_fast_pud_leaf(&self, mm: MmId, leaf: Leaf, addr: u64, flags: GupFlags, end: u64) -> Walk {
        self.gup_fast_leaf("gup_fast_pud_leaf", mm, leaf, addr, flags, end)
    }

    fn gup_fast_leaf(&self, f: &'static str, mm: MmId, leaf: Leaf, addr: u64, flags: GupFlags, end: u64) -> Walk {
        let Entry::Present(p) = leaf.entry else { return Walk::Bail(f, "leaf not present") };
        if !self.pte_access_permitted(self.mm(mm).vma(addr)) {
            return Walk::Bail(f, "PROT_NONE or key-protected leaf (pmd_access_permitted)");
        }
        if flags.write && !p.write {
            return Walk::Bail(f, "write to a read-only leaf");
        }
        if p.folio == HUGE_ZERO_FOLIO {
            return Walk::Bail(f, "huge zero folio (special)");
        }
        let leaf_end = leaf.addr + leaf.level.size();
        let refs = (leaf_end.min(end) - addr) / PAGE_SIZE;
        let (folio, page) = leaf.page_for(addr).expect("present");
        Walk::Found { leaf, folio, page, refs }
    }

    /// `gup_fast_folio_allowed()`: without a VMA, a writable long-term pin
    /// may only take anon, shmem or hugetlb folios; other file folios (which
    /// may need dirty tracking) are left to the slow path to judge.
    pub(crate) fn gup_fast_folio_allowed(&self, folio: FolioId, flags: GupFlags) -> bool {
        if !(flags.write && flags.longterm) {
            return true;
        }
        let f = self.folios.get(folio);
        match f.kind {
            crate::folio::FolioKind::Anon | crate::folio::FolioKind::Zero => true,
            crate::folio::FolioKind::File { inode, .. } => f.hugetlb.is_some() || !self.inodes[&inode].kind.needs_dirty_tracking(),
        }
    }
}
