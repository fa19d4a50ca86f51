//! get_user_pages / pin_user_pages, the slow path (mm/gup.c, mm/internal.h).

use crate::contents::Contents;
use crate::events::EventKind;
use crate::folio::{FolioId, MmId};
use crate::kernel::{GupHandle, GupRecord, Kernel};
use crate::memory::{FaultFlags, VmFault};
use crate::mmap_lock::MmapReadGuard;
use crate::pgtable::{Entry, Level, Present};
use crate::policy::Hugepd;
use crate::types::*;
use crate::vma::Vma;
use std::fmt;

/// What a GUP call got: the pages, in order, each held by one reference or
/// pin, and the error that stopped it before the requested count, if any.
pub(crate) type PagesGot = (PageList, Option<SysError>);

/// The pages a GUP got, in order: the model's `struct page **pages`.
///
/// Kept as runs, each an arithmetic progression of (folio, page) pairs
/// whose folio id and page index each advance by 0 or 1 from one entry to
/// the next: the pages of one folio in order (0, 1), small folios allocated
/// one after another (1, 0), the zero page over and over (0, 0). A pin of
/// 1 GiB of populated 4 KiB pages is then one run instead of 262,144
/// entries. Nothing reads the list but through the page sequence it
/// stands for ([`PageList::iter`], [`PageList::get`],
/// [`PageList::folio_stretches`]), and [`PageList::push`] merges greedily
/// from the left, so one sequence has one representation: equal lists are
/// equal values and hash alike (the explorer deduplicates states by them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageList {
    runs: Vec<PageRun>,
    len: u64,
}

/// `nr` entries from (`folio`, `page`), the i-th being (`folio` + i·`df`,
/// `page` + i·`dp`); `start` is the index of the first in the list. A run
/// of one entry has `df` and `dp` 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PageRun {
    start: u64,
    folio: u32,
    page: u64,
    nr: u64,
    df: u8,
    dp: u8,
}

impl PageRun {
    fn at(&self, i: u64) -> (FolioId, u64) {
        (FolioId(self.folio + (i * self.df as u64) as u32), self.page + i * self.dp as u64)
    }

    /// Does (`folio`, `page`) come next, extending the run as it is?
    fn extends(&self, folio: FolioId, page: u64) -> bool {
        if self.nr == 1 {
            return matches!(folio.0.wrapping_sub(self.folio), 0 | 1) && matches!(page.wrapping_sub(self.page), 0 | 1);
        }
        self.at(self.nr) == (folio, page)
    }
}

impl PageList {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many pages (entries).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one page.
    #[inline]
    pub fn push(&mut self, folio: FolioId, page: u64) {
        if !self.lengthen(folio, page) {
            self.push_n(folio, page, 1, 0, 0);
        }
    }

    /// Appends `nr` consecutive pages of one folio from `page` on (a
    /// leaf's worth); the same list as `nr` calls of [`PageList::push`].
    #[inline]
    pub fn push_pages(&mut self, folio: FolioId, page: u64, nr: u64) {
        if !(nr == 1 && self.lengthen(folio, page)) {
            self.push_n(folio, page, nr, 0, 1);
        }
    }

    /// The common case of a push, kept small: the last run has two or
    /// more entries and (`folio`, `page`) is its next one.
    #[inline]
    fn lengthen(&mut self, folio: FolioId, page: u64) -> bool {
        match self.runs.last_mut() {
            Some(r) if r.nr > 1 && r.at(r.nr) == (folio, page) => {
                r.nr += 1;
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// Appends the same page `nr` times (the zero page over a range); the
    /// same list as `nr` calls of [`PageList::push`].
    pub fn push_same(&mut self, folio: FolioId, page: u64, nr: u64) {
        self.push_n(folio, page, nr, 0, 0);
    }

    /// `nr` entries (`folio` + i·`df`, `page` + i·`dp`), as one push each
    /// would leave them: the first joins the last run if it extends it,
    /// and the rest extend that run too if it now advances as they do;
    /// whatever is left starts a run of its own.
    fn push_n(&mut self, folio: FolioId, page: u64, nr: u64, df: u8, dp: u8) {
        if nr == 0 {
            return;
        }
        let (mut start, mut folio, mut page, mut nr) = (self.len, folio, page, nr);
        self.len += nr;
        if let Some(r) = self.runs.last_mut().filter(|r| r.extends(folio, page)) {
            if r.nr == 1 {
                r.df = (folio.0 - r.folio) as u8;
                r.dp = (page - r.page) as u8;
            }
            r.nr += 1;
            nr -= 1;
            if nr == 0 || (r.df, r.dp) == (df, dp) {
                r.nr += nr;
                return;
            }
            start += 1;
            folio.0 += df as u32;
            page += dp as u64;
        }
        let (df, dp) = if nr > 1 { (df, dp) } else { (0, 0) };
        self.runs.push(PageRun { start, folio: folio.0, page, nr, df, dp });
    }

    /// Appends every page of `other`.
    pub fn append(&mut self, other: &PageList) {
        for r in &other.runs {
            self.push_n(FolioId(r.folio), r.page, r.nr, r.df, r.dp);
        }
    }

    /// The `i`-th page.
    pub fn get(&self, i: u64) -> Option<(FolioId, u64)> {
        if i >= self.len {
            return None;
        }
        let r = &self.runs[self.runs.partition_point(|r| r.start <= i) - 1];
        Some(r.at(i - r.start))
    }

    /// The pages in order.
    pub fn iter(&self) -> impl Iterator<Item = (FolioId, u64)> + '_ {
        self.runs.iter().flat_map(|r| (0..r.nr).map(move |i| r.at(i)))
    }

    /// How many entries from the `i`-th on are consecutive pages of one
    /// folio (at least 1 when `i` is in the list).
    fn contiguous_from(&self, i: u64) -> u64 {
        let Some((folio, page)) = self.get(i) else { return 0 };
        let (mut n, mut idx) = (0, i);
        for r in &self.runs[self.runs.partition_point(|r| r.start <= i) - 1..] {
            let from = idx - r.start;
            if r.at(from) != (folio, page + n) {
                break;
            }
            let k = if r.df == 0 && r.dp == 1 { r.nr - from } else { 1 };
            n += k;
            idx += k;
            if from + k < r.nr {
                break;
            }
        }
        n
    }

    /// The maximal stretches of consecutive entries in one folio, as
    /// (folio, entries): what `gup_folio_next()` (mm/gup.c) hands to
    /// `gup_put_folio()` one at a time when the list is released.
    pub fn folio_stretches(&self) -> impl Iterator<Item = (FolioId, u64)> + '_ {
        let mut segments = self.runs.iter().flat_map(|r| {
            let (each, count) = if r.df == 0 { (r.nr, 1) } else { (1, r.nr) };
            (0..count).map(move |i| (r.at(i).0, each))
        });
        let mut pending = segments.next();
        std::iter::from_fn(move || {
            let (folio, mut n) = pending?;
            pending = None;
            for (f, k) in segments.by_ref() {
                if f != folio {
                    pending = Some((f, k));
                    break;
                }
                n += k;
            }
            Some((folio, n))
        })
    }
}

impl FromIterator<(FolioId, u64)> for PageList {
    fn from_iter<I: IntoIterator<Item = (FolioId, u64)>>(iter: I) -> Self {
        let mut l = PageList::new();
        for (f, p) in iter {
            l.push(f, p);
        }
        l
    }
}

/// FOLL_* flags a caller passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GupFlags {
    pub write: bool,
    pub longterm: bool,
    /// FOLL_PIN (pin_user_pages*); otherwise FOLL_GET.
    pub pin: bool,
    /// FOLL_FORCE (ptrace-style access).
    pub force: bool,
    /// FOLL_REMOTE: the caller reaches into an mm that may not be its
    /// own (`get_user_pages_remote()`), so the CPU's protection keys of
    /// the calling thread say nothing about it.
    pub remote: bool,
}

impl GupFlags {
    pub const GET: GupFlags = GupFlags { write: false, longterm: false, pin: false, force: false, remote: false };
    pub const PIN: GupFlags = GupFlags { write: false, longterm: false, pin: true, force: false, remote: false };

    pub fn with_write(mut self) -> Self {
        self.write = true;
        self
    }

    pub fn with_longterm(mut self) -> Self {
        self.longterm = true;
        self
    }
}

impl fmt::Display for GupFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.pin { "FOLL_PIN" } else { "FOLL_GET" })?;
        if self.write {
            f.write_str("|FOLL_WRITE")?;
        }
        if self.longterm {
            f.write_str("|FOLL_LONGTERM")?;
        }
        if self.force {
            f.write_str("|FOLL_FORCE")?;
        }
        if self.remote {
            f.write_str("|FOLL_REMOTE")?;
        }
        Ok(())
    }
}

/// `pte_needs_soft_dirty_wp()` (mm/internal.h): soft-dirty tracking is
/// armed for the VMA (its VM_SOFTDIRTY was cleared) and the entry is not
/// soft-dirty yet, so the next write must fault to be recorded.
pub(crate) fn pte_needs_soft_dirty_wp(vma: &Vma, p: Present) -> bool {
    !vma.softdirty && !p.soft_dirty
}

/// What `follow_page_mask()` found for one address.
enum Follow {
    /// Grabbed: folio, page, and how many pages of the same leaf follow
    /// (including this one).
    Page(FolioId, u64, u64),
    /// Not present, or not writable enough: fault it in.
    NoPage,
    /// -EMLINK: must unshare first.
    Unshare,
}

/// How often the slow path re-faults one address before the model calls it
/// a livelock (the kernel would loop until a fatal signal).
const MAX_FAULT_RETRIES: u32 = 8;

impl Kernel {
    /// `gup_must_unshare()` (mm/internal.h): called only for a read-only
    /// entry. FOLL_GET and FOLL_WRITE never unshare. A R/O pin of an anon page
    /// must unshare unless the page is anon-exclusive. A R/O long-term pin of
    /// a non-anon page (page cache, zero page) must unshare in a COW mapping
    /// so later writes stay visible; from GUP-fast (no VMA) that is not
    /// known, so it says yes and the slow path decides. Policies from before
    /// 5.19 have no unshare at all.
    pub(crate) fn gup_must_unshare(&self, vma: Option<&Vma>, flags: GupFlags, folio: FolioId, page: u64) -> bool {
        if !self.policy.has_unshare() || !flags.pin || flags.write {
            return false;
        }
        let f = self.folios.get(folio);
        if !f.is_anon() {
            if !flags.longterm {
                return false;
            }
            return match vma {
                None => true,
                Some(v) => v.is_cow_mapping(),
            };
        }
        let page = if f.hugetlb.is_some() { 0 } else { page };
        !f.page_ae(page)
    }

    /// `try_grab_folio()`: take `n` references for GET, or `n` pins. The zero
    /// folios are never pinned (pin and unpin are no-ops for them).
    pub(crate) fn try_grab_folio(&mut self, folio: FolioId, n: u64, flags: GupFlags) -> bool {
        let f = self.folios.get_mut(folio);
        if f.freed || f.refcount <= 0 {
            return false;
        }
        let n = n as i64;
        if !flags.pin {
            f.refcount += n;
        } else if f.is_zero() {
        } else if f.is_large() {
            f.refcount += n;
            f.pincount += n;
        } else {
            f.refcount += n * GUP_PIN_COUNTING_BIAS;
        }
        true
    }

    /// `gup_put_folio()`: release `n` references or pins taken by
    /// [`Kernel::try_grab_folio`].
    pub(crate) fn gup_put_folio(&mut self, folio: FolioId, n: u64, pin: bool) {
        let f = self.folios.get_mut(folio);
        let n = n as i64;
        if !pin {
            self.folio_put_refs(folio, n);
        } else if f.is_zero() {
        } else if f.is_large() {
            f.pincount -= n;
            self.folio_put_refs(folio, n);
        } else {
            self.folio_put_refs(folio, n * GUP_PIN_COUNTING_BIAS);
        }
    }

    /// `is_valid_gup_args()` (mm/gup.c): flag combinations no GUP entry
    /// point accepts. The one a caller of the model can get wrong:
    /// FOLL_LONGTERM is only for pins, so a long-term FOLL_GET is EINVAL
    /// (the kernel also warns once). FOLL_GET with FOLL_PIN cannot be said
    /// here; internal-only flags and a missing pages array do not exist.
    pub(crate) fn is_valid_gup_args(flags: GupFlags) -> SysResult<()> {
        if flags.longterm && !flags.pin {
            return Err(Errno::EINVAL.into());
        }
        Ok(())
    }

    /// `writable_file_mapping_allowed()` (mm/gup.c): a write through a
    /// long-term pin into a file that tracks dirty pages would bypass the
    /// filesystem (it cleans the page and write-protects it, the pin keeps
    /// writing), so FOLL_PIN|FOLL_LONGTERM writes are refused there. Short
    /// pins and FOLL_GET are allowed.
    fn writable_file_mapping_allowed(&self, vma: &Vma, flags: GupFlags) -> bool {
        if !(flags.pin && flags.longterm) {
            return true;
        }
        !self.vma_needs_dirty_tracking(vma)
    }

    /// `check_vma_flags()` (mm/gup.c): may GUP touch this VMA this way? A
    /// write needs VM_WRITE, or FOLL_FORCE in a COW mapping (ptrace
    /// writing through a read-only private mapping; shared mappings are
    /// refused). A read needs VM_READ, or FOLL_FORCE (VM_MAYREAD is always
    /// set in the model): unlike the CPU, GUP without FOLL_FORCE does not
    /// read a PROT_WRITE-only or PROT_EXEC-only mapping. Then the
    /// architecture's veto (protection keys), which x86 waives for a
    /// FOLL_REMOTE access: the calling thread's PKRU says nothing about
    /// another mm (`arch_vma_access_permitted()` with `foreign`). Left out:
    /// VM_IO/VM_PFNMAP, FOLL_ANON, DAX, secretmem, shadow stacks.
    pub(crate) fn check_vma_flags(&self, vma: &Vma, flags: GupFlags) -> SysResult<()> {
        if flags.write {
            if !vma.is_anonymous() && !self.writable_file_mapping_allowed(vma, flags) {
                return Err(Errno::EFAULT.into());
            }
            if !(vma.prot.write || (flags.force && vma.is_cow_mapping())) {
                return Err(Errno::EFAULT.into());
            }
        } else if !vma.prot.read && !flags.force {
            return Err(Errno::EFAULT.into());
        }
        if !flags.remote && !self.arch_vma_access_permitted(vma) {
            return Err(Errno::EFAULT.into());
        }
        Ok(())
    }

    /// `can_follow_write_common()` (mm/gup.c): may FOLL_FORCE write to a
    /// page whose entry is read-only? Only in a private mapping that could
    /// be writable but is not (VM_MAYWRITE without VM_WRITE), and only once
    /// the page is an anonymous, anon-exclusive copy: the write fault that
    /// GUP takes before asking again breaks COW (or reuses an exclusive
    /// page) without making the entry writable, and this is how the second
    /// look knows the fault is done. `page` is None for a special entry
    /// (no struct page: the zero page).
    fn can_follow_write_common(&self, vma: &Vma, flags: GupFlags, page: Option<(FolioId, u64)>) -> bool {
        if !flags.force || vma.shared || !vma.maywrite || vma.prot.write {
            return false;
        }
        let Some((folio, page)) = page else { return false };
        let f = self.folios.get(folio);
        f.is_anon() && f.page_ae(if f.hugetlb.is_some() { 0 } else { page })
    }

    /// `can_follow_write_pte()` (mm/gup.c): a writable PTE, or a forced
    /// write [`Kernel::can_follow_write_common`] allows and that needs no
    /// write fault for soft-dirty tracking. `can_follow_write_pmd()` is the
    /// same test on a PMD leaf (THP or 2 MiB hugetlb), so the model uses
    /// this one for both. Left out: userfaultfd write protection.
    fn can_follow_write_pte(&self, vma: &Vma, p: Present, page: Option<(FolioId, u64)>, flags: GupFlags) -> bool {
        p.write || (self.can_follow_write_common(vma, flags, page) && !pte_needs_soft_dirty_wp(vma, p))
    }

    /// `can_follow_write_pud()` (mm/gup.c): a PUD leaf (1 GiB hugetlb) has
    /// no soft-dirty condition.
    fn can_follow_write_pud(&self, vma: &Vma, p: Present, page: Option<(FolioId, u64)>, flags: GupFlags) -> bool {
        p.write || self.can_follow_write_common(vma, flags, page)
    }

    /// `vma_needs_dirty_tracking()`: a shared writable mapping of a file on a
    /// filesystem that tracks dirty pages (not shmem, not hugetlbfs).
    pub(crate) fn vma_needs_dirty_tracking(&self, vma: &Vma) -> bool {
        vma.shared && vma.prot.write && vma.inode().is_some_and(|i| self.inodes[&i].kind.needs_dirty_tracking())
    }

    /// `follow_page_mask()` → `follow_page_pte()` / `follow_huge_pmd()` /
    /// `follow_huge_pud()`, with the grab of the first page. A write needs
    /// `can_follow_write_pte()` (or its PMD/PUD twin), which a FOLL_FORCE
    /// write through a read-only private mapping meets once its fault has
    /// left an exclusive anon page behind the still read-only entry. The
    /// PMD and PUD checks look at the leaf's first page, as the kernel's
    /// do. `cow_done` is 5.8's FOLL_COW (see [`Policy::gup_cow_break`]): a
    /// write fault already broke COW in a VMA without VM_WRITE, so a dirty
    /// read-only entry will do. With hugepd directories a hugetlb VMA goes
    /// to [`Kernel::follow_hugepd`] instead.
    ///
    /// [`Policy::gup_cow_break`]: crate::policy::Policy::gup_cow_break
    fn follow_page_mask(&mut self, mm: MmId, vma: &Vma, addr: u64, flags: GupFlags, cow_done: bool) -> SysResult<Follow> {
        if vma.hugetlb.is_some() && self.policy.hugepd != Hugepd::Off {
            return Ok(self.follow_hugepd(mm, vma, addr, flags));
        }
        let Some(leaf) = self.mm(mm).pt.lookup(addr) else { return Ok(Follow::NoPage) };
        let Entry::Present(p) = leaf.entry else { return Ok(Follow::NoPage) };
        if flags.write {
            let head = if p.special { None } else { leaf.page_for(leaf.addr) };
            let ok = match leaf.level {
                Level::Pte | Level::Pmd => self.can_follow_write_pte(vma, p, head, flags),
                Level::Pud => self.can_follow_write_pud(vma, p, head, flags),
            } || (self.policy.gup_cow_break && cow_done && p.dirty);
            if !ok {
                return Ok(Follow::NoPage);
            }
        }
        let (folio, page) = leaf.page_for(addr).expect("present");
        let (folio, page) = if p.special { (crate::folio::ZERO_FOLIO, 0) } else { (folio, page) };
        if !p.write && self.gup_must_unshare(Some(vma), flags, folio, page) {
            return Ok(Follow::Unshare);
        }
        if !self.try_grab_folio(folio, 1, flags) {
            return Err(Errno::ENOMEM.into());
        }
        let left = (leaf.addr + leaf.level.size() - page_align_down(addr)) / PAGE_SIZE;
        Ok(Follow::Page(folio, page, left))
    }

    /// `follow_hugepd()` of 6.10 (mm/gup.c; hugepd and this function are
    /// gone in 6.18) for a hugetlb VMA on an architecture with hugepd
    /// directories: under the page-table lock it runs GUP-fast's hugepd
    /// walker `gup_hugepte()` for the one page. The walker takes the page
    /// only if the entry allows the access (a write needs a writable entry:
    /// `pte_access_permitted()`, no FOLL_FORCE rule), the folio may be
    /// pinned this way (`folio_fast_pin_allowed()`) and `gup_must_unshare()`
    /// does not object; the model asks those before the grab, where the
    /// walker grabs and puts back, which leaves the same counts. What the
    /// walker gets to see of the VMA and what its refusal becomes is the
    /// knob `hugepd` ([`Hugepd`]): with the fix, the VMA and -EMLINK (an
    /// unshare fault follows); as a12083d721d7 first had it, no VMA and
    /// "no page", which GUP answers with a read fault that finds the page
    /// present and changes nothing. The rest of the huge page comes with
    /// the first page (`ctx->page_mask`).
    fn follow_hugepd(&mut self, mm: MmId, vma: &Vma, addr: u64, flags: GupFlags) -> Follow {
        let Some(leaf) = self.mm(mm).pt.lookup(addr) else { return Follow::NoPage };
        let Entry::Present(p) = leaf.entry else { return Follow::NoPage };
        if flags.write && !p.write {
            return Follow::NoPage;
        }
        let (folio, page) = leaf.page_for(addr).expect("present");
        if !self.gup_fast_folio_allowed(folio, flags) {
            return Follow::NoPage;
        }
        let fixed = self.policy.hugepd == Hugepd::Vma;
        if !p.write && self.gup_must_unshare(fixed.then_some(vma), flags, folio, page) {
            return if fixed { Follow::Unshare } else { Follow::NoPage };
        }
        if !self.try_grab_folio(folio, 1, flags) {
            return Follow::NoPage;
        }
        let left = (leaf.addr + leaf.level.size() - page_align_down(addr)) / PAGE_SIZE;
        Follow::Page(folio, page, left)
    }

    /// `__get_user_pages()`: walk, fault in what is missing or must be
    /// unshared, grab. Returns the pages collected and the error that ended
    /// the walk early, if any.
    /// The caller holds the mmap lock for reading (`lock`, which names the
    /// mm walked): no fork of this mm is half done.
    pub(crate) fn get_user_pages_slow(&mut self, lock: &MmapReadGuard, pid: Pid, start: u64, nr: u64, flags: GupFlags) -> PagesGot {
        let mm = lock.mm();
        if flags.pin {
            self.mm_mut(mm).has_pinned = true;
        }
        let mut pages = PageList::new();
        let mut retries = 0;
        let mut cow_done = false;
        // The VMA of the previous page, already checked. VMAs change only
        // under the mmap lock held for writing; the faults taken here may
        // give a VMA its anon_vma (or consume a hugetlb reservation), which
        // nothing below reads, so the copy stays good until the walk leaves
        // it.
        let mut cached: Option<Vma> = None;
        while pages.len() < nr {
            let addr = start + pages.len() * PAGE_SIZE;
            if cached.as_ref().is_none_or(|v| addr >= v.end) {
                let Some(vma) = self.mm(mm).vma(addr).cloned() else { return (pages, Some(Errno::EFAULT.into())) };
                if let Err(e) = self.check_vma_flags(&vma, flags) {
                    return (pages, Some(e));
                }
                cached = Some(vma);
            }
            let vma = cached.as_ref().expect("looked up above");
            // 5.8's should_force_cow_break(): in a COW mapping every GUP is
            // done as a write, after the VMA check of the caller's flags.
            let foll = if self.policy.gup_cow_break && vma.is_cow_mapping() { flags.with_write() } else { flags };
            match self.follow_page_mask(mm, vma, addr, foll, cow_done) {
                Err(e) => return (pages, Some(e)),
                Ok(Follow::Page(folio, page, left)) => {
                    retries = 0;
                    cow_done = false;
                    let k = left.min(nr - pages.len());
                    self.work.add(k);
                    if k > 1 && !self.try_grab_folio(folio, k - 1, flags) {
                        return (pages, Some(Errno::ENOMEM.into()));
                    }
                    if self.folios.get(folio).is_zero() {
                        pages.push_same(folio, page, k);
                    } else {
                        pages.push_pages(folio, page, k);
                    }
                }
                Ok(f @ (Follow::NoPage | Follow::Unshare)) => {
                    retries += 1;
                    if retries > MAX_FAULT_RETRIES {
                        self.stats.livelocks += 1;
                        return (pages, Some(SysError::Livelock));
                    }
                    let unshare = matches!(f, Follow::Unshare);
                    let ff = FaultFlags { write: foll.write, unshare };
                    cow_done = foll.write && !vma.prot.write;
                    if unshare {
                        self.event(pid, EventKind::Gup, "gup_must_unshare", Some(addr), || {
                            "R/O pin of a possibly shared page → unshare fault".into()
                        });
                    }
                    if let Err(e) = self.handle_mm_fault(pid, mm, addr, ff) {
                        let err = match e {
                            // The OOM killer chose this task: it is dead, and
                            // nothing it was collecting reaches its caller's
                            // pipe, ring or handle (they are gone).
                            VmFault::Oom => {
                                self.release_pages(&pages, flags.pin);
                                return (PageList::new(), Some(SysError::Signal(Signal::SIGKILL)));
                            }
                            VmFault::Livelock => SysError::Livelock,
                            VmFault::Sigbus | VmFault::Sigsegv => Errno::EFAULT.into(),
                        };
                        return (pages, Some(err));
                    }
                }
            }
        }
        (pages, None)
    }

    /// Releases pages collected by a GUP: each stretch of consecutive
    /// entries of one folio with one [`Kernel::gup_put_folio`], as
    /// `unpin_user_pages()` (mm/gup.c) batches them with
    /// `gup_folio_next()`. The references a FOLL_GET holder drops page by
    /// page with `put_page()` leave the same counts.
    pub(crate) fn release_pages(&mut self, pages: &PageList, pin: bool) {
        for (folio, n) in pages.folio_stretches() {
            self.gup_put_folio(folio, n, pin);
        }
    }

    /// The model's gup_test: get or pin `nr` pages from `addr` with `flags`,
    /// through GUP-fast (`fast`) or the slow path, looping until the range is
    /// covered like PIN_LONGTERM_TEST_START; any error releases everything.
    /// The module first allocates an array of one pointer per page with
    /// `kvcalloc()`, which refuses more than INT_MAX bytes: ENOMEM for
    /// ranges of 1 TiB and more (mm/gup_test.c, mm/slub.c
    /// `__kvmalloc_node_noprof()`).
    pub fn gup(&mut self, pid: Pid, addr: u64, nr: u64, flags: GupFlags, fast: bool) -> SysResult<GupHandle> {
        if nr.checked_mul(8).is_none_or(|bytes| bytes > i32::MAX as u64) {
            return Err(Errno::ENOMEM.into());
        }
        let pages = self.gup_pages(pid, addr, nr, flags, fast)?;
        let func = match (fast, flags.pin) {
            (true, true) => "pin_user_pages_fast",
            (true, false) => "get_user_pages_fast",
            (false, true) => "pin_user_pages",
            (false, false) => "get_user_pages",
        };
        self.event(pid, EventKind::Gup, func, Some(addr), || format!("{nr} page(s), {flags}"));
        Ok(self.gup_record(pid, flags, pages))
    }

    /// Hands collected pages to a handle that holds them until `unpin`.
    fn gup_record(&mut self, pid: Pid, flags: GupFlags, pages: PageList) -> GupHandle {
        let h = GupHandle(self.fresh_id());
        self.gup.insert(h, GupRecord { pid, pin: flags.pin, longterm: flags.longterm, write: flags.write, pages });
        h
    }

    /// Turns a finished GUP-fast step machine into a handle (its references
    /// become the handle's), or releases them if it failed.
    pub fn gup_fast_into_handle(&mut self, g: crate::gup_fast::GupFast) -> SysResult<GupHandle> {
        match g.result {
            Some(Ok(())) => Ok(self.gup_record(g.pid, g.flags, g.pages)),
            Some(Err(e)) => {
                self.release_pages(&g.pages, g.flags.pin);
                Err(e)
            }
            None => Err(Errno::EINVAL.into()),
        }
    }

    /// Collects exactly `nr` pages or fails having released all of them.
    pub(crate) fn gup_pages(&mut self, pid: Pid, addr: u64, nr: u64, flags: GupFlags, fast: bool) -> SysResult<PageList> {
        let (pages, err) = self.gup_pages_upto(pid, addr, nr, flags, fast)?;
        match err {
            None => Ok(pages),
            Some(e) => {
                self.release_pages(&pages, flags.pin);
                Err(e)
            }
        }
    }

    /// GUP as the kernel answers it: the pages got before the first failure
    /// (held), and that failure. `Err` only for arguments GUP rejects.
    pub(crate) fn gup_pages_upto(&mut self, pid: Pid, addr: u64, nr: u64, flags: GupFlags, fast: bool) -> SysResult<PagesGot> {
        let mm = self.mm_of(pid)?;
        Kernel::is_valid_gup_args(flags)?;
        if nr == 0
            || !is_aligned(addr, PAGE_SIZE)
            || nr.checked_mul(PAGE_SIZE).and_then(|l| addr.checked_add(l)).is_none_or(|e| e > TASK_SIZE)
        {
            return Err(Errno::EINVAL.into());
        }
        if fast {
            return Ok(self.gup_fast_fallback(pid, mm, addr, nr, flags));
        }
        let lock = self.mmap_read_lock(mm)?;
        Ok(self.get_user_pages_slow(&lock, pid, addr, nr, flags))
    }

    /// unpin_user_pages() / put_page() for everything a handle holds.
    pub fn unpin(&mut self, pid: Pid, h: GupHandle) -> SysResult<()> {
        let rec = self.gup.remove(&h).ok_or(Errno::EINVAL)?;
        self.release_pages(&rec.pages, rec.pin);
        self.event(pid, EventKind::Gup, if rec.pin { "unpin_user_pages" } else { "put_page" }, None, || {
            format!("{} page(s)", rec.pages.len())
        });
        Ok(())
    }

    /// What the held pages contain now (gup_test's read through the pin).
    pub fn gup_read(&self, h: GupHandle, off: u64, len: u64) -> SysResult<Contents> {
        let rec = self.gup.get(&h).ok_or(Errno::EINVAL)?;
        if off.checked_add(len).is_none_or(|e| e > rec.pages.len() * PAGE_SIZE) {
            return Err(Errno::EINVAL.into());
        }
        Ok(self.read_pages(&rec.pages, off, len))
    }

    /// The bytes `[off, off+len)` of a list of pages, read folio by folio
    /// (consecutive pages of one folio in one piece).
    pub(crate) fn read_pages(&self, pages: &PageList, off: u64, len: u64) -> Contents {
        let mut out = Contents::default();
        let mut pos = off;
        while pos < off + len {
            let i = pos / PAGE_SIZE;
            let (f, page) = pages.get(i).expect("the caller's range is within the list");
            let folio = self.folios.get(f);
            // How many following entries continue in the same folio (a
            // small folio has no next page to continue with).
            let run = if folio.is_zero() || !folio.is_large() { 1 } else { pages.contiguous_from(i) };
            let in_page = pos % PAGE_SIZE;
            let n = (run * PAGE_SIZE - in_page).min(off + len - pos);
            let start = if folio.is_zero() { 0 } else { page * PAGE_SIZE + in_page };
            if start == 0 && n == folio.data.len() {
                // A whole small folio: its bytes as they are, no copy cut.
                out.append(&folio.data);
            } else {
                out.append(&folio.data.slice(start, n));
            }
            pos += n;
        }
        out
    }

    /// Stores `data` into a list of held pages from byte `off` on, as a
    /// device or the kernel writes through a pin (the CPU's page tables are
    /// not involved): the folios' bytes change and they become dirty.
    pub(crate) fn write_pages(&mut self, pages: &PageList, off: u64, data: &Contents) {
        let mut done = 0;
        while done < data.len() {
            let pos = off + done;
            let (f, page) = pages.get(pos / PAGE_SIZE).expect("the caller's range is within the list");
            let n = (PAGE_SIZE - pos % PAGE_SIZE).min(data.len() - done);
            let fo = self.folios.get_mut(f);
            fo.data.overwrite(page * PAGE_SIZE + pos % PAGE_SIZE, &data.slice(done, n));
            fo.dirty = true;
            done += n;
        }
    }

    /// The pages a handle holds (folio and page within it).
    pub fn gup_pages_of(&self, h: GupHandle) -> Option<&PageList> {
        self.gup.get(&h).map(|r| &r.pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_of as hash;

    /// A small xorshift generator: the same sequences on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// How a stretch of a page sequence is handed to the list.
    enum Piece {
        Pages(FolioId, u64, u64),
        Same(FolioId, u64, u64),
        One(FolioId, u64),
    }

    /// A sequence made of the shapes GUP produces (a folio's pages in
    /// order, small folios one after another, the zero page repeated) and
    /// odd ones in between, in pieces as the walkers hand them over.
    fn pieces(rng: &mut Rng) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut next_folio = rng.below(4) as u32;
        for _ in 0..rng.below(12) {
            let f = FolioId(if rng.below(3) == 0 { rng.below(6) as u32 } else { next_folio });
            let (page, nr) = (rng.below(4), 1 + rng.below(5));
            match rng.below(4) {
                0 => out.push(Piece::Pages(f, page, nr)),
                1 => out.push(Piece::Same(f, page, nr)),
                2 => out.extend((0..nr as u32).map(|i| Piece::One(FolioId(f.0 + i), page))),
                _ => out.push(Piece::One(f, page)),
            }
            next_folio = f.0 + 1;
        }
        out
    }

    fn expand(pieces: &[Piece]) -> Vec<(FolioId, u64)> {
        let mut v = Vec::new();
        for p in pieces {
            match *p {
                Piece::Pages(f, page, nr) => v.extend((0..nr).map(|i| (f, page + i))),
                Piece::Same(f, page, nr) => v.extend((0..nr).map(|_| (f, page))),
                Piece::One(f, page) => v.push((f, page)),
            }
        }
        v
    }

    /// However a sequence is handed over (page by page, in pieces, or as
    /// two lists appended), the list is the same value, hashes alike, and
    /// reads back as the sequence: by index, in order, by folio stretch
    /// (as `chunk_by` on the plain list) and by contiguous stretch.
    #[test]
    fn one_sequence_one_list() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let ps = pieces(&mut rng);
            let seq = expand(&ps);
            let by_page: PageList = seq.iter().copied().collect();
            let mut by_piece = PageList::new();
            for p in &ps {
                match *p {
                    Piece::Pages(f, page, nr) => by_piece.push_pages(f, page, nr),
                    Piece::Same(f, page, nr) => by_piece.push_same(f, page, nr),
                    Piece::One(f, page) => by_piece.push(f, page),
                }
            }
            let cut = rng.below(seq.len() as u64 + 1) as usize;
            let mut appended: PageList = seq[..cut].iter().copied().collect();
            appended.append(&seq[cut..].iter().copied().collect());
            assert_eq!(by_page, by_piece, "{seq:?}");
            assert_eq!(by_page, appended, "{seq:?} cut at {cut}");
            assert_eq!(hash(&by_page), hash(&by_piece));
            let l = by_piece;
            assert_eq!(l.len(), seq.len() as u64);
            assert_eq!(l.iter().collect::<Vec<_>>(), seq);
            for (i, &e) in seq.iter().enumerate() {
                assert_eq!(l.get(i as u64), Some(e));
                let contiguous = seq[i..].iter().enumerate().take_while(|(k, &(f, p))| f == e.0 && p == e.1 + *k as u64).count();
                assert_eq!(l.contiguous_from(i as u64), contiguous as u64, "{seq:?} from {i}");
            }
            assert_eq!(l.get(seq.len() as u64), None);
            let stretches: Vec<(FolioId, u64)> = seq.chunk_by(|a, b| a.0 == b.0).map(|c| (c[0].0, c.len() as u64)).collect();
            assert_eq!(l.folio_stretches().collect::<Vec<_>>(), stretches, "{seq:?}");
        }
    }

    /// The shapes GUP makes of populated memory are one run each.
    #[test]
    fn gup_shapes_are_one_run() {
        let small: PageList = (0..262_144).map(|i| (FolioId(7 + i), 0)).collect();
        let mut thp = PageList::new();
        thp.push_pages(FolioId(3), 5, 507);
        let mut zero = PageList::new();
        zero.push_same(FolioId(0), 0, 100);
        for l in [&small, &thp, &zero] {
            assert_eq!(l.runs.len(), 1);
        }
        assert_eq!(small.get(262_143), Some((FolioId(7 + 262_143), 0)));
        assert_eq!(thp.get(506), Some((FolioId(3), 511)));
    }
}
