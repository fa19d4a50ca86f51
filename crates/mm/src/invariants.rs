//! `check_invariants()`: the consistency rules of spec §1.4 and the model's
//! own bookkeeping, checked after every step in tests.

use crate::folio::{FolioId, FolioKind, MmId};
use crate::kernel::Kernel;
use crate::pgtable::{Entry, Level};
use crate::policy::AnonReuse;
use crate::splice::PipeBuf;
use crate::types::*;
use std::collections::BTreeMap;
use std::fmt;

/// A broken invariant: which rule, and the object it was found on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation(pub String);

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant violated: {}", self.0)
    }
}

impl std::error::Error for InvariantViolation {}

#[derive(Default)]
struct Expect {
    refs: i64,
    maps: i64,
    entire: i64,
    pins: i64,
    per_mm: BTreeMap<MmId, u32>,
    /// PTE mappings per page of the folio.
    per_page: BTreeMap<u64, u32>,
}

impl Kernel {
    /// Reservations the maps promise for size `h`: every private owner VMA's
    /// unconsumed pages and every hugetlbfs/memfd inode's reserved indices.
    fn hugetlb_reservations_held(&self, h: HugeSize) -> i64 {
        let private: u64 = self
            .mms
            .values()
            .flat_map(|m| m.vmas.values())
            .filter(|v| v.hugetlb == Some(h) && !v.noreserve)
            .filter_map(|v| {
                let r = v.resv.as_ref().filter(|r| r.owner)?;
                let per = h.bytes() / PAGE_SIZE;
                let first = v.pgoff / per;
                let n = v.len() / h.bytes();
                Some(n - r.consumed.range(first..first + n).count() as u64)
            })
            .sum();
        let shared: usize = self.inodes.values().filter(|i| i.hugetlb == Some(h)).map(|i| i.resv.len()).sum();
        private as i64 + shared as i64
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(InvariantViolation(format!($($fmt)*)));
        }
    };
}

impl Kernel {
    /// Recomputes every folio's references from their holders (mappings,
    /// page cache, swap cache, GUP handles, pipe buffers, io_uring buffers)
    /// and checks them against the counters; checks anon-exclusive rules,
    /// swap counts and hugetlb pool balance.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_invariants_holding(&[])
    }

    /// [`Kernel::check_invariants`] while racing paths are half done:
    /// `in_flight` lists the references their step machines hold outside
    /// the kernel's books (GUP-fast's grabbed pages, a fault's new page not
    /// yet mapped, pages a zap gathered for freeing after the TLB flush), as
    /// (folio, count, FOLL_PIN). They count as holders, never as pins a
    /// pinned-page rule applies to: they may still be dropped.
    pub fn check_invariants_holding(&self, in_flight: &[(FolioId, u64, bool)]) -> Result<(), InvariantViolation> {
        let ram: u64 = self.folios.iter().filter(|(_, f)| f.hugetlb.is_none() && !f.is_zero()).map(|(_, f)| f.nr_pages()).sum();
        ensure!(ram == self.folios.ram_pages(), "folios take {ram} pages of RAM but the arena counts {}", self.folios.ram_pages());
        let running = self.tasks.values().filter(|t| t.state == crate::kernel::TaskState::Running).count() as u64;
        ensure!(running == self.nr_running, "{running} tasks are running but nr_running says {}", self.nr_running);
        let mut exp: BTreeMap<FolioId, Expect> = BTreeMap::new();
        let mut swap_refs: BTreeMap<crate::pgtable::SwapSlot, u32> = BTreeMap::new();
        let ae_rules = self.policy.anon_reuse == AnonReuse::AnonExclusive;
        for m in self.mms.values() {
            for v in m.vmas.values() {
                for leaf in m.pt.leaves(v.start, v.end) {
                    ensure!(
                        leaf.addr >= v.start && leaf.addr + leaf.level.size() <= v.end,
                        "leaf {:#x} ({}) crosses its VMA [{:#x}, {:#x})",
                        leaf.addr,
                        leaf.level.name(),
                        v.start,
                        v.end
                    );
                    match leaf.entry {
                        Entry::Swap { slot, .. } => *swap_refs.entry(slot).or_default() += 1,
                        Entry::Present(p) => {
                            if p.special {
                                ensure!(!p.write, "special PTE {:#x} is writable", leaf.addr);
                                continue;
                            }
                            let f = self.folios.get(p.folio);
                            ensure!(!f.freed, "{:#x} maps freed folio {:?}", leaf.addr, p.folio);
                            if f.is_zero() {
                                ensure!(!p.write, "zero folio mapped writable at {:#x}", leaf.addr);
                                continue;
                            }
                            let e = exp.entry(p.folio).or_default();
                            e.refs += 1;
                            e.maps += 1;
                            if leaf.level != Level::Pte {
                                e.entire += 1;
                            }
                            *e.per_mm.entry(m.id).or_default() += 1;
                            if leaf.level == Level::Pte {
                                *e.per_page.entry(p.page).or_default() += 1;
                            }
                            if ae_rules && p.write && v.is_cow_mapping() {
                                let page = if leaf.level == Level::Pte && f.hugetlb.is_none() { p.page } else { 0 };
                                ensure!(
                                    f.is_anon() && f.page_ae(page),
                                    "writable entry {:#x} in a COW mapping maps a page that is not anon-exclusive",
                                    leaf.addr
                                );
                            }
                        }
                    }
                }
            }
            let outside = m.pt.leaves(0, TASK_SIZE).len() - m.vmas.values().map(|v| m.pt.leaves(v.start, v.end).len()).sum::<usize>();
            ensure!(outside == 0, "mm {:?} has {outside} entries outside any VMA", m.id);
        }
        for inode in self.inodes.values() {
            for &f in inode.cache.values() {
                exp.entry(f).or_default().refs += 1;
            }
        }
        for (_, s) in self.swap.iter() {
            if let Some(f) = s.cache {
                exp.entry(f).or_default().refs += 1;
            }
        }
        let mut pinned_pages: Vec<(FolioId, u64)> = Vec::new();
        let mut add_gup = |exp: &mut BTreeMap<FolioId, Expect>, f: FolioId, page: u64, pin: bool| {
            let fo = self.folios.get(f);
            if pin && fo.is_zero() {
                return;
            }
            let e = exp.entry(f).or_default();
            if !pin {
                e.refs += 1;
            } else if fo.is_large() {
                e.refs += 1;
                e.pins += 1;
            } else {
                e.refs += GUP_PIN_COUNTING_BIAS;
            }
            if pin {
                pinned_pages.push((f, page));
            }
        };
        for r in self.gup.values() {
            for (f, page) in r.pages.iter() {
                add_gup(&mut exp, f, page, r.pin);
            }
        }
        for &(f, n, pin) in in_flight {
            let fo = self.folios.get(f);
            if !(pin && fo.is_zero()) {
                let e = exp.entry(f).or_default();
                let n = n as i64;
                match (pin, fo.is_large()) {
                    (false, _) => e.refs += n,
                    (true, true) => {
                        e.refs += n;
                        e.pins += n;
                    }
                    (true, false) => e.refs += n * GUP_PIN_COUNTING_BIAS,
                }
            }
        }
        for p in self.pipes.values() {
            for b in &p.bufs {
                if let PipeBuf::Page { folio, page, pin, .. } = b {
                    add_gup(&mut exp, *folio, *page, *pin);
                }
            }
        }
        for ring in self.rings.values() {
            for b in ring.bufs.iter().flatten() {
                for (f, page) in b.pages.iter() {
                    add_gup(&mut exp, f, page, true);
                }
            }
        }
        for (id, f) in self.folios.iter() {
            let e = exp.remove(&id).unwrap_or_default();
            // The zero pages' reference counts are not tracked (the kernel
            // does not count them either), but a FOLL_GET holder of one
            // (a pipe after vmsplice of untouched memory) is legitimate.
            if f.kind == FolioKind::Zero {
                continue;
            }
            ensure!(f.refcount == e.refs, "folio {:?} (pfn {:#x}): refcount {} but holders explain {}", id, f.pfn, f.refcount, e.refs);
            ensure!(f.refcount > 0, "live folio {:?} with refcount {}", id, f.refcount);
            ensure!(f.mapcount == e.maps, "folio {:?}: mapcount {} but {} mappings", id, f.mapcount, e.maps);
            ensure!(
                f.entire_mapcount == e.entire,
                "folio {:?}: entire_mapcount {} but {} PMD/PUD mappings",
                id,
                f.entire_mapcount,
                e.entire
            );
            if f.is_large() {
                ensure!(f.pincount == e.pins, "folio {:?}: pincount {} but {} pins held", id, f.pincount, e.pins);
                if f.hugetlb.is_none() {
                    for page in 0..f.nr_pages() {
                        let (have, want) = (f.page_mapcounts.get(page), e.per_page.get(&page).copied().unwrap_or(0));
                        ensure!(have == want, "folio {:?} page {page}: page mapcount {have} but {want} PTEs map it", id);
                    }
                    check_mm_ids(id, f, &e)?;
                } else {
                    ensure!(f.mm_ids == Default::default(), "hugetlb folio {:?} has mm slots {:?}", id, f.mm_ids);
                }
            }
        }
        ensure!(exp.is_empty(), "holders refer to freed folios: {:?}", exp.keys().collect::<Vec<_>>());
        if ae_rules {
            for (f, page) in pinned_pages {
                let fo = self.folios.get(f);
                if fo.is_anon() {
                    let pg = if fo.hugetlb.is_some() { 0 } else { page };
                    // A PMD-mapped THP keeps the bit on its head.
                    ensure!(fo.page_ae(pg) || fo.page_ae(0), "pinned anon page {page} of folio {f:?} is not anon-exclusive");
                }
            }
        }
        for (slot, s) in self.swap.iter() {
            let n = swap_refs.remove(&slot).unwrap_or(0);
            ensure!(s.count == n, "swap slot {slot:?}: count {} but {n} swap entries", s.count);
            ensure!(n > 0 || s.cache.is_some(), "swap slot {slot:?} is referred to by nothing");
            if let Some(f) = s.cache {
                ensure!(
                    self.swap_cache_of(f) == Some(slot),
                    "swap-cache folio {f:?} of slot {slot:?} is indexed as {:?}",
                    self.swap_cache_of(f)
                );
            }
        }
        ensure!(
            self.swap.iter().filter(|(_, s)| s.cache.is_some()).count() == self.swap.cached(),
            "the swap-cache index holds folios no slot caches"
        );
        ensure!(swap_refs.is_empty(), "swap entries refer to freed slots");
        for h in [HugeSize::Size2M, HugeSize::Size1G] {
            let hs = self.hugetlb_pool(h);
            let in_use = self.folios.iter().filter(|(_, f)| f.hugetlb == Some(h)).count() as u64;
            ensure!(hs.free <= hs.nr && hs.surplus <= hs.nr, "hugetlb {}K pool: {:?}", h.kb(), hs);
            // `resv <= free` is no invariant of the kernel: free_huge_folio()
            // restores a flagged reservation and then, if the pool has
            // surplus pages, frees the page itself, so a pinned page the
            // owner unmapped can leave more reserved than free (a later
            // reserved fault then needs a surplus page). The accounting
            // below is what must always hold.
            let promised = self.hugetlb_reservations_held(h);
            let restores = self.folios.iter().filter(|(_, f)| f.hugetlb == Some(h) && f.restore_reserve).count() as i64;
            ensure!(
                hs.resv as i64 == promised - restores,
                "hugetlb {}K pool: resv {} but the reservation maps hold {promised} and {restores} freed-later folios will restore one each",
                h.kb(),
                hs.resv as i64
            );
            ensure!(
                hs.nr - hs.free == in_use,
                "hugetlb {}K pool: {} pages in use by the counters, {in_use} folios live",
                h.kb(),
                hs.nr - hs.free
            );
        }
        Ok(())
    }
}

/// The CONFIG_MM_ID bookkeeping of a large folio against the mappings the
/// page tables hold (`e.per_mm`). What the kernel's slots promise: a slot
/// never counts more mappings than its mm has; an unmapped folio has free
/// slots and a clear shared bit; with the bit clear the folio is mapped by
/// one mm at most, and that mm's slot counts every mapping; a slot that
/// counts every mapping has cleared the bit; two taken slots mean the bit
/// is set. The bit may be set with one mm left: that is the approximation
/// the kernel makes, not a violation.
fn check_mm_ids(id: FolioId, f: &crate::folio::Folio, e: &Expect) -> Result<(), InvariantViolation> {
    let ids = &f.mm_ids;
    let taken: Vec<_> = ids.slots.iter().flatten().collect();
    if let [a, b] = taken[..] {
        ensure!(a.mm != b.mm, "folio {:?}: both mm slots hold {:?}", id, a.mm);
        ensure!(ids.shared, "folio {:?}: two mm slots taken but the shared bit is clear", id);
    }
    for s in &taken {
        let has = e.per_mm.get(&s.mm).copied().unwrap_or(0);
        ensure!(
            s.mapcount >= 1 && s.mapcount <= has,
            "folio {:?}: slot of {:?} counts {} mappings, the mm has {has}",
            id,
            s.mm,
            s.mapcount
        );
    }
    if f.mapcount == 0 {
        ensure!(taken.is_empty() && !ids.shared, "folio {:?}: unmapped but mm slots {:?}", id, ids);
    }
    let owner = taken.iter().find(|s| s.mapcount as i64 == f.mapcount);
    if owner.is_some() {
        ensure!(!ids.shared, "folio {:?}: one slot counts all {} mappings but the shared bit is set", id, f.mapcount);
    }
    if !ids.shared && f.mapcount > 0 {
        ensure!(
            e.per_mm.len() == 1 && owner.is_some(),
            "folio {:?}: shared bit clear but mapped by {:?} (slots {:?})",
            id,
            e.per_mm,
            ids.slots
        );
    }
    Ok(())
}
