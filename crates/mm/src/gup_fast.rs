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
//! The walker is a step machine: [`GupFastState`] names what has been read
//! without a lock and what must still be rechecked. One call of
//! [`Kernel::gup_fast_step`] is one atomic step (B1+B3 for an entry, then
//! B4+B5 for it), so an explorer can interleave it with fork's steps; a
//! sequential run drives it to the end. Left out: interrupts and the
//! page-table freeing they block (the model never frees a table under a
//! walker), architecture vetoes, P2PDMA, secretmem, long-term placement
//! (every folio is long-term pinnable).

use crate::events::EventKind;
use crate::folio::{FolioId, MmId, HUGE_ZERO_FOLIO};
use crate::gup::GupFlags;
use crate::kernel::Kernel;
use crate::pgtable::{Entry, Leaf, Level};
use crate::types::*;

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
    /// References taken on the folio of `leaf` (read without a lock) for
    /// `refs` pages from `addr`; next: re-read the entry and check AE.
    Grabbed { addr: u64, leaf: Leaf, folio: FolioId, page: u64, refs: u64 },
    /// The lockless walk is over: recheck write_protect_seq.
    End,
    /// The slow path takes the rest of the range.
    Slow,
    /// Finished; `pages` holds the result.
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
    pub pages: Vec<(FolioId, u64)>,
    /// `write_protect_seq` as sampled at the start (FOLL_PIN only).
    pub seq: Option<u64>,
    /// How the call ended, once `Done`.
    pub result: Option<SysResult<()>>,
}

/// What the lockless walk found for one address.
enum Walk {
    Found { leaf: Leaf, folio: FolioId, page: u64, refs: u64 },
    Bail(&'static str, &'static str),
}

impl Kernel {
    /// Starts a GUP-fast call (`gup_fast_fallback()`).
    pub fn gup_fast_begin(&self, pid: Pid, mm: MmId, start: u64, nr: u64, flags: GupFlags) -> GupFast {
        GupFast {
            pid,
            mm,
            start,
            nr,
            flags,
            state: GupFastState::Begin,
            pages: Vec::with_capacity(nr.min(1 << 20) as usize),
            seq: None,
            result: None,
        }
    }

    /// Runs one atomic step; returns false once the call is done.
    pub fn gup_fast_step(&mut self, g: &mut GupFast) -> bool {
        match g.state.clone() {
            GupFastState::Begin => {
                if g.flags.force {
                    // FOLL_FORCE is not among the flags GUP-fast accepts.
                    return self.gup_fast_finish(g, Err(Errno::EINVAL.into()));
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
                true
            }
            GupFastState::Walk { addr } | GupFastState::PteRange { addr } => {
                let end = g.start + g.nr * PAGE_SIZE;
                let walk = match g.state {
                    GupFastState::PteRange { .. } => self.gup_fast_pte_range(g.mm, addr, g.flags),
                    _ => self.gup_fast_pgd_range(g.mm, addr, g.flags, end),
                };
                match walk {
                    Walk::Bail(func, why) => {
                        self.event(g.pid, EventKind::Bail, func, Some(addr), || format!("{why} → slow path"));
                        g.state = GupFastState::End;
                    }
                    Walk::Found { leaf, folio, page, refs } => {
                        if self.try_grab_folio(folio, refs, g.flags) {
                            g.state = GupFastState::Grabbed { addr, leaf, folio, page, refs };
                        } else {
                            g.state = GupFastState::End;
                        }
                    }
                }
                true
            }
            GupFastState::Grabbed { addr, leaf, folio, page, refs } => {
                let now = self.mm(g.mm).pt.get(leaf.level, leaf.addr);
                let func = match leaf.level {
                    Level::Pte => "gup_fast_pte_range",
                    Level::Pmd => "gup_fast_pmd_leaf",
                    Level::Pud => "gup_fast_pud_leaf",
                };
                let bail = if self.policy.gup_fast_recheck && now != Some(leaf.entry) {
                    Some("entry changed under us")
                } else if !self.gup_fast_folio_allowed(folio, g.flags) {
                    Some("file-backed folio for a writable long-term pin")
                } else if !leaf.entry.present().is_some_and(|p| p.write) && self.gup_must_unshare(None, g.flags, folio, page) {
                    Some("read-only entry, gup_must_unshare")
                } else {
                    None
                };
                if let Some(why) = bail {
                    self.gup_put_folio(folio, refs, g.flags.pin);
                    self.event(g.pid, EventKind::Bail, func, Some(addr), || format!("{why} → slow path"));
                    g.state = GupFastState::End;
                    return true;
                }
                g.pages.extend((0..refs).map(|i| (folio, page + i)));
                let next = addr + refs * PAGE_SIZE;
                g.state = if next >= g.start + g.nr * PAGE_SIZE {
                    GupFastState::End
                } else if leaf.level == Level::Pte && !next.is_multiple_of(PMD_SIZE) {
                    GupFastState::PteRange { addr: next }
                } else {
                    GupFastState::Walk { addr: next }
                };
                true
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
                if g.pages.len() as u64 == g.nr {
                    return self.gup_fast_finish(g, Ok(()));
                }
                g.state = GupFastState::Slow;
                true
            }
            GupFastState::Slow => {
                let done = g.pages.len() as u64;
                let (more, err) = self.get_user_pages_slow(g.pid, g.mm, g.start + done * PAGE_SIZE, g.nr - done, g.flags);
                g.pages.extend(more);
                match err {
                    None => self.gup_fast_finish(g, Ok(())),
                    Some(e) => self.gup_fast_finish(g, Err(e)),
                }
            }
            GupFastState::Done => false,
        }
    }

    fn gup_fast_finish(&mut self, g: &mut GupFast, r: SysResult<()>) -> bool {
        g.state = GupFastState::Done;
        g.result = Some(r);
        false
    }

    /// `gup_fast_fallback()` run to completion: the pages it got, in order,
    /// and the error that stopped it before `nr`, if any (the kernel
    /// returns the count of the pages it got when that is not zero).
    pub(crate) fn gup_fast_fallback(
        &mut self,
        pid: Pid,
        mm: MmId,
        start: u64,
        nr: u64,
        flags: GupFlags,
    ) -> (Vec<(FolioId, u64)>, Option<SysError>) {
        let mut g = self.gup_fast_begin(pid, mm, start, nr, flags);
        while self.gup_fast_step(&mut g) {}
        let err = g.result.expect("set when done").err();
        (g.pages, err)
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

    /// `pte_access_permitted()` (and its PMD/PUD twins) for a present
    /// entry: a PROT_NONE entry is present but not accessible. The model's
    /// entries carry no protnone bit; mprotect() changes a VMA's protection
    /// and its entries together, so an entry is inaccessible exactly when
    /// its VMA is PROT_NONE, and that is read from the VMA here.
    fn pte_access_permitted(&self, mm: MmId, addr: u64) -> bool {
        self.mm(mm).vma(addr).is_some_and(|v| v.prot.read)
    }

    /// `gup_fast_pte_range()` for one PTE: not present, PROT_NONE, not
    /// writable enough or special (the zero page) → bail.
    fn gup_fast_pte_range(&self, mm: MmId, addr: u64, flags: GupFlags) -> Walk {
        let f = "gup_fast_pte_range";
        let Some(entry) = self.mm(mm).pt.get(Level::Pte, addr) else { return Walk::Bail(f, "PTE none") };
        let Entry::Present(p) = entry else { return Walk::Bail(f, "swap entry") };
        if !self.pte_access_permitted(mm, addr) {
            return Walk::Bail(f, "PROT_NONE PTE (pte_access_permitted)");
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
        if !self.pte_access_permitted(mm, addr) {
            return Walk::Bail(f, "PROT_NONE leaf (pmd_access_permitted)");
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
    fn gup_fast_folio_allowed(&self, folio: FolioId, flags: GupFlags) -> bool {
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
