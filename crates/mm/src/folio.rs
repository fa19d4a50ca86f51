//! Folios and the arena that owns them (the model's `struct folio` and page
//! allocator).
//!
//! Counters are kept the way the kernel keeps them (include/linux/mm.h,
//! include/linux/mm_types.h): one `refcount` for every holder, a `mapcount`
//! (per page for small folios, the folio-wide `_large_mapcount` for large
//! ones), an `entire_mapcount` for PMD/PUD mappings, a separate `pincount`
//! for large folios (`folio_has_pincount()` on 64-bit) while small folios
//! count a pin as [`GUP_PIN_COUNTING_BIAS`] references, and one
//! PageAnonExclusive bit per page. Large folios other than hugetlb also
//! carry the CONFIG_MM_ID bookkeeping ([`MmIdSlots`]: two mm slots and the
//! "maybe mapped shared" bit) and the per-page `_mapcount` of
//! CONFIG_PAGE_MAPCOUNT ([`PageCounts`]). Left out: LRU lists and per-CPU
//! batches, memcg, NUMA placement.

use crate::contents::Contents;
use crate::rmap::{MmIdSlot, MmIdSlots};
use crate::types::{HugeSize, GUP_PIN_COUNTING_BIAS, PAGE_SIZE};
use smallvec::{smallvec, SmallVec};

/// Index of a folio in the arena; stable for the folio's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolioId(pub u32);

/// Identifier of an address space (the kernel's `mm_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MmId(pub u32);

/// Identifier of an inode (file, memfd, shmem object).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeId(pub u32);

/// The shared zero page: always folio 0.
pub const ZERO_FOLIO: FolioId = FolioId(0);
/// The huge zero folio (PMD-sized): always folio 1.
pub const HUGE_ZERO_FOLIO: FolioId = FolioId(1);

/// What a folio holds, which decides its COW and GUP rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FolioKind {
    /// Anonymous memory (`folio_test_anon()`).
    Anon,
    /// A page-cache folio of `inode` at page index `index`.
    File { inode: InodeId, index: u64 },
    /// The shared zero page or the huge zero folio (`is_zero_folio()`).
    Zero,
}

/// One folio: `2^order` pages with one set of counters.
///
/// Laid out in declaration order from a cache-line boundary, so that what
/// a walk over many small folios reads or writes (the flags, the kind,
/// the PageAnonExclusive bit, `refcount` and `mapcount`) shares the first
/// 64-byte line: GUP, fork and unpin then touch one line per folio, not
/// two. The counters only large folios use (`entire_mapcount`,
/// `pincount`) come next.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Folio {
    pub order: u8,
    /// hugetlb folio of this size (never on the LRU, never split).
    pub hugetlb: Option<HugeSize>,
    /// hugetlb: the reservation is restored if the folio is freed before it
    /// is mapped (`folio_test_hugetlb_restore_reserve()`).
    pub restore_reserve: bool,
    /// PG_dirty. For anonymous folios the kernel sets it when a dirty PTE
    /// or PMD is taken down (unmap, split, migration), when swap space is
    /// freed under a mapped folio, and when a writer through GUP lets go of
    /// the page; a store by the CPU only dirties the PTE.
    pub dirty: bool,
    /// MADV_FREE made this anonymous folio lazily freeable: the kernel's
    /// PG_swapbacked is clear (`folio_mark_lazyfree()`), so reclaim drops
    /// it instead of swapping it out, unless it was written again
    /// (try_to_unmap_one() then sets PG_swapbacked again).
    pub lazyfree: bool,
    pub freed: bool,
    pub kind: FolioKind,
    /// PageAnonExclusive, one bit per page (for PMD/PUD mappings and hugetlb
    /// only bit 0, the head's, is consulted).
    pub anon_exclusive: PageBits,
    pub refcount: i64,
    /// Small: the page's mapcount. Large: total mappings, each PTE counting
    /// one and each PMD/PUD mapping one (`folio_large_mapcount()`).
    pub mapcount: i64,
    /// PMD/PUD mappings of the whole folio (`folio_entire_mapcount()`).
    pub entire_mapcount: i64,
    /// Large folios only: outstanding FOLL_PIN page references.
    pub pincount: i64,
    /// Large folios other than hugetlb: which mms the kernel remembers as
    /// mapping the folio, and whether it may be mapped by more than one
    /// (CONFIG_MM_ID). An approximation by design: see [`MmIdSlots`].
    pub mm_ids: MmIdSlots,
    /// PTE mappings per page of a large folio (the kernel's per-page
    /// `_mapcount` + 1 under CONFIG_PAGE_MAPCOUNT). PMD/PUD mappings are
    /// counted in `entire_mapcount` only; small folios use `mapcount`. Kept
    /// whatever the `page_mapcount` knob says: with it off the kernel has no
    /// such counts, and then only the invariant check reads them.
    pub page_mapcounts: PageCounts,
    pub data: Contents,
    /// First page frame number; subpage `i` is `pfn + i`.
    pub pfn: u64,
}

impl std::hash::Hash for Folio {
    /// Every field, the fixed-size ones packed into one write of tagged
    /// words (the explorer hashes every folio of every state it meets, and
    /// one hasher call per field and enum tag cost more than the rest of
    /// its hash); the per-page vectors and the contents follow when
    /// present. Naming every field (of the mm slots too) makes a new one a
    /// compile error here until it is hashed.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let Folio {
            order,
            kind,
            hugetlb,
            restore_reserve,
            refcount,
            mapcount,
            entire_mapcount,
            pincount,
            anon_exclusive,
            mm_ids,
            page_mapcounts,
            dirty,
            lazyfree,
            data,
            freed,
            pfn,
        } = self;
        let (kind, inode, index) = match *kind {
            FolioKind::Anon => (0, 0, 0),
            FolioKind::File { inode, index } => (1, inode.0, index),
            FolioKind::Zero => (2, 0, 0),
        };
        let huge = match hugetlb {
            None => 0,
            Some(HugeSize::Size2M) => 1,
            Some(HugeSize::Size1G) => 2,
        };
        let (ae_many, ae_one) = match anon_exclusive {
            PageBits::One(b) => (false, *b),
            PageBits::Many(_) => (true, false),
        };
        let (counts_in_runs, counts_nr, counts) = match page_mapcounts {
            PageCounts::Uniform { nr, count } => (false, *nr, *count as u64),
            PageCounts::Runs(_) => (true, 0, 0),
        };
        let MmIdSlots { slots, shared } = mm_ids;
        let slot = |i: usize| slots[i].map_or(0, |MmIdSlot { mm, mapcount }| (mm.0 as u64) << 32 | mapcount as u64);
        let flags = *order as u64
            | kind << 8
            | huge << 10
            | (*restore_reserve as u64) << 12
            | (*dirty as u64) << 13
            | (*freed as u64) << 14
            | (*shared as u64) << 15
            | (ae_many as u64) << 16
            | (ae_one as u64) << 17
            | (counts_in_runs as u64) << 18
            | (slots[0].is_some() as u64) << 19
            | (slots[1].is_some() as u64) << 20
            | (*lazyfree as u64) << 21
            | (inode as u64) << 32;
        let words = [
            flags,
            index,
            *refcount as u64,
            *mapcount as u64,
            *entire_mapcount as u64,
            *pincount as u64,
            *pfn,
            slot(0),
            slot(1),
            counts_nr,
            counts,
        ];
        let mut bytes = [0u8; 88];
        for (b, w) in bytes.chunks_exact_mut(8).zip(words) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        h.write(&bytes);
        if let PageBits::Many(w) = anon_exclusive {
            w.hash(h);
        }
        if let PageCounts::Runs(v) = page_mapcounts {
            v.hash(h);
        }
        data.hash(h);
    }
}

impl Folio {
    pub fn nr_pages(&self) -> u64 {
        1 << self.order
    }

    pub fn size(&self) -> u64 {
        self.nr_pages() * PAGE_SIZE
    }

    pub fn is_large(&self) -> bool {
        self.order > 0
    }

    pub fn is_anon(&self) -> bool {
        self.kind == FolioKind::Anon
    }

    pub fn is_zero(&self) -> bool {
        self.kind == FolioKind::Zero
    }

    /// `folio_maybe_dma_pinned()`: exact for large folios (pincount), an
    /// over-approximation for small ones (any 1024 references look pinned).
    pub fn maybe_dma_pinned(&self) -> bool {
        if self.is_large() {
            self.pincount > 0
        } else {
            self.refcount >= GUP_PIN_COUNTING_BIAS
        }
    }

    /// `folio_maybe_mapped_shared()` (include/linux/mm.h): may the folio be
    /// mapped by more than one mm? Exact for small and hugetlb folios (more
    /// than one mapping). For other large folios: a single mapping means
    /// "exclusive", otherwise the answer is the MM_ID "shared" bit, which can
    /// stay set after all but one mm have unmapped the folio (see
    /// [`MmIdSlots`]).
    pub fn maybe_mapped_shared(&self) -> bool {
        if !self.is_large() || self.hugetlb.is_some() {
            return self.mapcount > 1;
        }
        self.mapcount > 1 && self.mm_ids.shared
    }

    /// `folio_precise_page_mapcount()` (fs/proc/internal.h, needs
    /// CONFIG_PAGE_MAPCOUNT): the page table entries that map `page`,
    /// directly by a PTE or as part of a PMD/PUD mapping of the folio.
    pub fn precise_page_mapcount(&self, page: u64) -> i64 {
        if !self.is_large() {
            return self.mapcount;
        }
        self.page_mapcounts.get(page) as i64 + self.entire_mapcount
    }

    /// `folio_average_page_mapcount()` (fs/proc/internal.h, what
    /// /proc/kpagecount reports without CONFIG_PAGE_MAPCOUNT): the mappings
    /// per page of the folio, rounded to the nearest integer, at least 1 if
    /// anything is mapped; PMD/PUD mappings count once per page.
    pub fn average_page_mapcount(&self) -> i64 {
        if !self.is_large() {
            return self.mapcount;
        }
        if self.mapcount <= 0 {
            return 0;
        }
        if self.mapcount <= self.entire_mapcount {
            return self.entire_mapcount;
        }
        let ptes = self.mapcount - self.entire_mapcount;
        let avg = (ptes + self.nr_pages() as i64 / 2) >> self.order;
        (avg + self.entire_mapcount).max(1)
    }

    pub fn page_ae(&self, page: u64) -> bool {
        self.anon_exclusive.get(page)
    }

    pub fn page_data(&self, page: u64) -> Contents {
        self.data.slice(page * PAGE_SIZE, PAGE_SIZE)
    }
}

/// A bit per page, compact for small folios (a large folio's words are
/// boxed: a [`Folio`] stays small, see [`PageCounts`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PageBits {
    One(bool),
    Many(Box<[u64]>),
}

impl PageBits {
    pub fn new(nr: u64, v: bool) -> Self {
        if nr == 1 {
            PageBits::One(v)
        } else {
            let words = nr.div_ceil(64) as usize;
            PageBits::Many(vec![if v { u64::MAX } else { 0 }; words].into_boxed_slice())
        }
    }

    pub fn get(&self, i: u64) -> bool {
        match self {
            PageBits::One(b) => *b,
            PageBits::Many(w) => w[(i / 64) as usize] >> (i % 64) & 1 == 1,
        }
    }

    pub fn set(&mut self, i: u64, v: bool) {
        match self {
            PageBits::One(b) => *b = v,
            PageBits::Many(w) => {
                let (wi, bi) = ((i / 64) as usize, i % 64);
                if v {
                    w[wi] |= 1 << bi;
                } else {
                    w[wi] &= !(1 << bi);
                }
            }
        }
    }

    /// Whether any of the bits `first .. first + nr` is set, a word at a
    /// time.
    pub fn any_in(&self, first: u64, nr: u64) -> bool {
        match self {
            PageBits::One(b) => nr > 0 && *b,
            PageBits::Many(w) => word_masks(first, nr).any(|(i, m)| w[i] & m != 0),
        }
    }

    /// Sets the bits `first .. first + nr` to `v`, a word at a time.
    pub fn set_range(&mut self, first: u64, nr: u64, v: bool) {
        match self {
            PageBits::One(b) if nr > 0 => *b = v,
            PageBits::One(_) => {}
            PageBits::Many(w) => {
                for (i, m) in word_masks(first, nr) {
                    if v {
                        w[i] |= m;
                    } else {
                        w[i] &= !m;
                    }
                }
            }
        }
    }

    pub fn set_all(&mut self, v: bool) {
        match self {
            PageBits::One(b) => *b = v,
            PageBits::Many(w) => w.iter_mut().for_each(|x| *x = if v { u64::MAX } else { 0 }),
        }
    }
}

/// The words that bits `first .. first + nr` fall in, each with the mask
/// of those bits.
fn word_masks(first: u64, nr: u64) -> impl Iterator<Item = (usize, u64)> {
    let end = first + nr;
    let words = if nr == 0 { 0..0 } else { first / 64..end.div_ceil(64) };
    words.map(move |i| {
        let lo = first.max(i * 64) - i * 64;
        let hi = end.min(i * 64 + 64) - i * 64;
        let mask = if hi - lo == 64 { u64::MAX } else { ((1u64 << (hi - lo)) - 1) << lo };
        (i as usize, mask)
    })
}

/// A count per page (the per-page mapcounts of a large folio), kept as
/// runs of pages with one count: one run while every page has the same
/// count (as after mapping or forking a whole folio), a few while a fork
/// or a zap is part-way through a folio's PTEs. So a PTE-by-PTE walk over
/// a 2 MiB folio costs a few runs per PTE, not 512 counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PageCounts {
    /// Every page of the folio has this count.
    Uniform { nr: u64, count: u32 },
    /// At least two runs, `(end, count)`: pages up to `end` (exclusive,
    /// from the previous run's end) have `count`. Ends ascend, the last is
    /// the folio's page count, and neighbouring runs differ in count, so
    /// equal counts have one form. Boxed: only a large folio mapped in part
    /// has runs, and a small [`Folio`] (192 bytes, from 256 with the runs
    /// inline) is what makes pin and fork, which stream through the folio
    /// arena, cheap (pin of 1 GiB: 12.0 → 6.6 ms).
    Runs(Box<SmallVec<[(u64, u32); 3]>>),
}

impl PageCounts {
    pub fn new(nr: u64) -> Self {
        PageCounts::Uniform { nr, count: 0 }
    }

    pub fn get(&self, page: u64) -> u32 {
        match self {
            PageCounts::Uniform { count, .. } => *count,
            PageCounts::Runs(r) => r[r.partition_point(|&(end, _)| end <= page)].1,
        }
    }

    /// Adds `delta` to the count of pages `first .. first + nr`. Counts
    /// saturate at zero; a removal of a mapping that was never added is a
    /// model bug, which `check_invariants()` reports (it recounts every page
    /// from the page tables).
    pub fn add(&mut self, first: u64, nr: u64, delta: i32) {
        if nr == 0 {
            return;
        }
        if let PageCounts::Uniform { nr: all, count } = self {
            if first == 0 && nr == *all {
                *count = count.saturating_add_signed(delta);
                return;
            }
            *self = PageCounts::Runs(Box::new(smallvec![(*all, *count)]));
        }
        let PageCounts::Runs(runs) = self else { unreachable!("made runs above") };
        let end = first + nr;
        // A PTE walk part-way through a folio (zap, fork): two runs, and
        // the pages right after the first run take its count, so its end
        // moves on and nothing else changes.
        if let [(e0, c0), (e1, c1)] = runs.as_mut_slice() {
            if first == *e0 && end < *e1 && c1.saturating_add_signed(delta) == *c0 {
                *e0 = end;
                return;
            }
        }
        if add_within_run(runs, first, end, delta) {
            if let [(all, count)] = runs.as_slice() {
                *self = PageCounts::Uniform { nr: *all, count: *count };
            }
            return;
        }
        split_run(runs, first);
        split_run(runs, end);
        let inside = runs.partition_point(|&(e, _)| e <= first)..runs.partition_point(|&(e, _)| e <= end);
        for (_, c) in &mut runs[inside] {
            *c = c.saturating_add_signed(delta);
        }
        // Neighbours that now have one count become one run.
        runs.dedup_by(|later, kept| {
            let same = later.1 == kept.1;
            if same {
                kept.0 = later.0;
            }
            same
        });
        if let [(all, count)] = runs.as_slice() {
            *self = PageCounts::Uniform { nr: *all, count: *count };
        }
    }
}

/// The common case of [`PageCounts::add`], a PTE walk's: `[first, end)`
/// lies in one run and starts or ends where that run does, so at most one
/// run is added and only its neighbours can merge. False (nothing done)
/// otherwise.
fn add_within_run(runs: &mut SmallVec<[(u64, u32); 3]>, first: u64, end: u64, delta: i32) -> bool {
    let i = runs.partition_point(|&(e, _)| e <= first);
    let start = if i == 0 { 0 } else { runs[i - 1].0 };
    let (run_end, c) = runs[i];
    if end > run_end || (first != start && end != run_end) {
        return false;
    }
    let new = c.saturating_add_signed(delta);
    if new == c {
        return true;
    }
    let before = (i > 0).then(|| runs[i - 1].1);
    let after = runs.get(i + 1).map(|r| r.1);
    match (first == start, end == run_end) {
        (true, true) => {
            runs[i].1 = new;
            if after == Some(new) {
                runs.remove(i);
            }
            if before == Some(new) {
                runs.remove(i - 1);
            }
        }
        (true, false) if before == Some(new) => runs[i - 1].0 = end,
        (true, false) => runs.insert(i, (end, new)),
        (false, _) if after == Some(new) => runs[i].0 = first,
        (false, _) => {
            runs[i].0 = first;
            runs.insert(i + 1, (end, new));
        }
    }
    true
}

/// Makes page `at` the first of a run, cutting the run that holds it.
fn split_run(runs: &mut SmallVec<[(u64, u32); 3]>, at: u64) {
    let i = runs.partition_point(|&(e, _)| e <= at);
    let start = if i == 0 { 0 } else { runs[i - 1].0 };
    if i < runs.len() && start < at {
        runs.insert(i, (at, runs[i].1));
    }
}

/// Folios per chunk of the arena (16 KiB of 256-byte folios).
const CHUNK: usize = 64;

/// The arena's free slots, handed out lowest first: a bit per slot up to
/// the highest free one, and the first word with a bit set. Freeing and
/// reusing a slot is then a bit operation; a `BTreeSet` allocated a node
/// every few frees and walked it on every allocation. The word vector is
/// trimmed after its last set bit and `first` is a function of the set, so
/// equal sets are equal values (and hash equal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct FreeSlots {
    words: Vec<u64>,
    /// Index of the first non-zero word; `words.len()` when the set is
    /// empty.
    first: usize,
}

impl FreeSlots {
    fn insert(&mut self, slot: u32) {
        let w = (slot / 64) as usize;
        let empty = self.first == self.words.len();
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (slot % 64);
        if empty || w < self.first {
            self.first = w;
        }
    }

    /// Takes the lowest free slot out of the set.
    fn pop_first(&mut self) -> Option<u32> {
        let first = self.first;
        let word = self.words.get_mut(first)?;
        let bit = word.trailing_zeros();
        *word &= *word - 1;
        if *word == 0 {
            self.first = self.words[first + 1..].iter().position(|&w| w != 0).map_or(self.words.len(), |p| first + 1 + p);
            while self.words.last() == Some(&0) {
                self.words.pop();
            }
            self.first = self.first.min(self.words.len());
        }
        Some(first as u32 * 64 + bit)
    }
}

/// All folios of the system; freed slots are reused lowest-first so that two
/// runs of the same steps produce equal states.
///
/// The slots are kept in chunks of [`CHUNK`] that are filled in turn and
/// never grow past it, so a new folio moves no folio of another chunk (a
/// chunk made with room for [`CHUNK`] moves none; a clone's last chunk has
/// only the room it needed, so it may move its own as it fills): one `Vec`
/// of all folios copied every folio each time it doubled, which cost more
/// than the rest of a THP split into 512 small folios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolioArena {
    /// Slot `i` is `chunks[i / CHUNK][i % CHUNK]`; every chunk but the last
    /// is full.
    chunks: Vec<Vec<Folio>>,
    free: FreeSlots,
    next_pfn: u64,
    /// Base pages in live folios that take RAM of their own: neither the
    /// zero folios nor hugetlb folios (those come out of the pools).
    ram_pages: u64,
}

impl FolioArena {
    pub fn new() -> Self {
        let mut a = FolioArena { chunks: Vec::new(), free: Default::default(), next_pfn: 0x1000, ram_pages: 0 };
        let zero = a.alloc(0, FolioKind::Zero, None);
        let huge_zero = a.alloc(9, FolioKind::Zero, None);
        debug_assert_eq!((zero, huge_zero), (ZERO_FOLIO, HUGE_ZERO_FOLIO));
        for id in [zero, huge_zero] {
            // The system's own reference keeps the zero folios alive forever.
            let f = a.get_mut(id);
            f.refcount = 1;
            f.anon_exclusive.set_all(false);
        }
        a
    }

    /// Allocates a zero-filled folio with refcount 1 and no mappings.
    pub fn alloc(&mut self, order: u8, kind: FolioKind, hugetlb: Option<HugeSize>) -> FolioId {
        self.alloc_with(order, kind, hugetlb, Contents::zeroed(PAGE_SIZE << order))
    }

    /// [`FolioArena::alloc`] of a folio whose bytes are `data` (its whole
    /// size): a folio allocated to be copied into, as `wp_page_copy()`
    /// allocates without `__GFP_ZERO` when it copies, is not zeroed first.
    pub(crate) fn alloc_with(&mut self, order: u8, kind: FolioKind, hugetlb: Option<HugeSize>, data: Contents) -> FolioId {
        let nr = 1u64 << order;
        debug_assert_eq!(data.len(), nr * PAGE_SIZE, "a folio's bytes cover it");
        if kind != FolioKind::Zero && hugetlb.is_none() {
            self.ram_pages += nr;
        }
        let pfn = self.next_pfn.next_multiple_of(nr);
        self.next_pfn = pfn + nr;
        let folio = Folio {
            order,
            kind,
            hugetlb,
            restore_reserve: false,
            refcount: 1,
            mapcount: 0,
            entire_mapcount: 0,
            pincount: 0,
            anon_exclusive: PageBits::new(nr, false),
            mm_ids: MmIdSlots::default(),
            page_mapcounts: PageCounts::new(nr),
            dirty: false,
            lazyfree: false,
            data,
            freed: false,
            pfn,
        };
        self.insert(folio)
    }

    /// Puts `folio` into the lowest free slot.
    fn insert(&mut self, folio: Folio) -> FolioId {
        if let Some(i) = self.free.pop_first() {
            *self.get_mut(FolioId(i)) = folio;
            return FolioId(i);
        }
        let full = self.chunks.last().is_none_or(|c| c.len() == CHUNK);
        if full {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let id = (self.chunks.len() - 1) * CHUNK + self.chunks[self.chunks.len() - 1].len();
        self.chunks.last_mut().expect("a chunk with room was just ensured").push(folio);
        FolioId(id as u32)
    }

    pub fn get(&self, id: FolioId) -> &Folio {
        let i = id.0 as usize;
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    pub fn get_mut(&mut self, id: FolioId) -> &mut Folio {
        let i = id.0 as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    /// The bookkeeping half of `__split_unmapped_folio()` to order 0
    /// (mm/huge_memory.c) for a large anonymous folio whose every reference
    /// is a PTE mapping: page `i` becomes a small folio of its own at frame
    /// `pfn + i` (page 0 keeps `id`), with that page's bytes, mapcount and
    /// PageAnonExclusive bit, one reference per mapping, and the head's
    /// dirty and lazyfree flags. Returns the new folio of every page, in
    /// page order. The caller points the PTEs at them.
    pub(crate) fn split_to_small(&mut self, id: FolioId) -> Vec<FolioId> {
        // Page 0's folio replaces the head at the end, so the head's
        // per-page parts are taken out of it rather than copied, and each
        // page's folio is built from them field by field, not from a copy
        // of the whole head per page.
        let head = self.get_mut(id);
        let Folio { hugetlb, restore_reserve, dirty, lazyfree, freed, kind, pfn, .. } = *head;
        let nr = head.nr_pages();
        let data = std::mem::take(&mut head.data);
        let ae = std::mem::replace(&mut head.anon_exclusive, PageBits::One(false));
        let counts = std::mem::replace(&mut head.page_mapcounts, PageCounts::new(1));
        let small = |page: u64| {
            let mapcount = counts.get(page) as i64;
            Folio {
                order: 0,
                hugetlb,
                restore_reserve,
                dirty,
                lazyfree,
                freed,
                kind,
                refcount: mapcount,
                mapcount,
                entire_mapcount: 0,
                pincount: 0,
                anon_exclusive: PageBits::new(1, ae.get(page)),
                mm_ids: MmIdSlots::default(),
                page_mapcounts: PageCounts::new(1),
                data: data.slice(page * PAGE_SIZE, PAGE_SIZE),
                pfn: pfn + page,
            }
        };
        let mut ids = Vec::with_capacity(nr as usize);
        ids.push(id);
        for page in 1..nr {
            let new = self.insert(small(page));
            ids.push(new);
        }
        *self.get_mut(id) = small(0);
        ids
    }

    /// Marks a folio whose last reference went away as free.
    pub(crate) fn release(&mut self, id: FolioId) {
        let f = self.get_mut(id);
        let ram = if f.kind != FolioKind::Zero && f.hugetlb.is_none() { f.nr_pages() } else { 0 };
        f.freed = true;
        f.data = Contents::default();
        f.mm_ids = MmIdSlots::default();
        f.page_mapcounts = PageCounts::new(1);
        self.ram_pages -= ram;
        self.free.insert(id.0);
    }

    /// Base pages of RAM the live folios take ([`FolioArena::alloc`]'s
    /// anonymous, page-cache and swap-cache folios).
    pub fn ram_pages(&self) -> u64 {
        self.ram_pages
    }

    /// Live folios (not freed), zero folios included.
    pub fn iter(&self) -> impl Iterator<Item = (FolioId, &Folio)> {
        self.chunks.iter().flatten().enumerate().filter(|(_, f)| !f.freed).map(|(i, f)| (FolioId(i as u32), f))
    }

    /// The folio with the page frame `pfn`, if live.
    pub fn by_pfn(&self, pfn: u64) -> Option<(FolioId, u64)> {
        self.iter().find(|(_, f)| pfn >= f.pfn && pfn < f.pfn + f.nr_pages()).map(|(id, f)| (id, pfn - f.pfn))
    }
}

impl std::hash::Hash for FolioArena {
    /// As the one `Vec` of all folios hashed before the arena came in
    /// chunks: the number of slots, then every slot in order (the chunking
    /// follows from the number of slots, so it adds nothing).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let FolioArena { chunks, free, next_pfn, ram_pages } = self;
        h.write_usize(chunks.iter().map(Vec::len).sum());
        chunks.iter().flatten().for_each(|f| f.hash(h));
        free.hash(h);
        next_pfn.hash(h);
        ram_pages.hash(h);
    }
}

impl Default for FolioArena {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random range updates agree with a plain count per page, and equal
    /// counts have one form.
    #[test]
    fn page_counts_agree_with_a_plain_vector() {
        let nr = 100u64;
        let mut c = PageCounts::new(nr);
        let mut v = vec![0u32; nr as usize];
        let mut seed = 7u64;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let first = (seed >> 33) % nr;
            let len = ((seed >> 17) % 40).min(nr - first);
            let delta = [-1, 1, 1, 0][((seed >> 9) % 4) as usize];
            c.add(first, len, delta);
            for x in &mut v[first as usize..(first + len) as usize] {
                *x = x.saturating_add_signed(delta);
            }
            assert!((0..nr).all(|p| c.get(p) == v[p as usize]));
            let mut same = PageCounts::new(nr);
            let mut start = 0;
            for (i, &x) in v.iter().enumerate() {
                if i + 1 == v.len() || v[i + 1] != x {
                    same.add(start, i as u64 + 1 - start, 0);
                    for _ in 0..x {
                        same.add(start, i as u64 + 1 - start, 1);
                    }
                    start = i as u64 + 1;
                }
            }
            assert_eq!(c, same, "one form for one set of counts");
        }
    }

    /// Slots come back lowest first whatever order they were freed in, and
    /// the set has one form for one set of slots.
    #[test]
    fn free_slots_hand_out_the_lowest_first() {
        let mut f = FreeSlots::default();
        for s in [200, 3, 64, 130, 0] {
            f.insert(s);
        }
        assert_eq!(f.pop_first(), Some(0));
        assert_eq!(f.pop_first(), Some(3));
        f.insert(1);
        let got: Vec<_> = std::iter::from_fn(|| f.pop_first()).collect();
        assert_eq!(got, [1, 64, 130, 200]);
        assert_eq!(f, FreeSlots::default(), "an emptied set equals a new one");
        let (mut a, mut b) = (FreeSlots::default(), FreeSlots::default());
        a.insert(5);
        a.insert(300);
        a.pop_first();
        b.insert(300);
        assert_eq!(a, b);
    }

    #[test]
    fn page_bit_ranges_agree_with_single_bits() {
        let mut b = PageBits::new(200, false);
        b.set_range(60, 70, true);
        assert!((0..200).all(|i| b.get(i) == (60..130).contains(&i)));
        assert!(b.any_in(0, 61) && b.any_in(129, 71) && !b.any_in(0, 60) && !b.any_in(130, 70) && !b.any_in(70, 0));
        b.set_range(64, 64, false);
        assert!((0..200).all(|i| b.get(i) == ((60..64).contains(&i) || (128..130).contains(&i))));
        let mut one = PageBits::new(1, true);
        assert!(one.any_in(0, 1) && !one.any_in(0, 0));
        one.set_range(0, 1, false);
        assert!(!one.get(0));
    }
}
