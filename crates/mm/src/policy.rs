//! Policies: the rules argued about on the list, as values.
//!
//! A profile is a named set of choices that reproduces one kernel;
//! `linux-6.18` is the default and must agree with this machine's kernel.
//! Every knob has a name and textual values so that the command line
//! (`--set knob=value`) and the policy lab can flip it.

use std::fmt;

/// How a write (or unshare) fault decides that an anonymous small folio may
/// be reused instead of copied (mm/memory.c: do_wp_page()).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnonReuse {
    /// 5.19 on: reuse if PageAnonExclusive, else if the refcount is 1;
    /// R/O pins unshare (gup_must_unshare) and fork copies pinned pages.
    AnonExclusive,
    /// 5.9 – 5.18: reuse iff the refcount is 1; fork copies pinned pages but
    /// there is no unshare fault for R/O pins.
    Refcount,
    /// Up to 5.8: reuse iff the page is mapped once (reuse_swap_page()),
    /// whatever other references exist — the rule behind CVE-2020-29374
    /// (5.8 adds a forced COW in GUP on top, knob `gup_cow_break`).
    Mapcount,
}

/// Which GUP flavour vmsplice() uses to take its page references
/// (fs/splice.c: iter_to_pipe() → iov_iter_get_pages2()).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmspliceGup {
    /// FOLL_GET, as 6.18 does: invisible to COW and fork.
    Get,
    /// FOLL_PIN (the long-discussed fix): R/O pins unshare first.
    Pin,
}

/// How hugetlb_wp() decides to reuse a private anonymous huge page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HugetlbReuse {
    /// 6.18: `folio_mapcount() == 1`, whatever references exist.
    Mapcount,
    /// An anon-exclusive page is reused (as for small pages, so pins stay
    /// coherent); otherwise all references must be explained: one mapping
    /// and the fault path's own reference. Any foreign one (a pipe's
    /// FOLL_GET, another mapping) copies.
    Refcount,
    /// The rule David Hildenbrand warned about on linux-mm (April 2024):
    /// replace the mapcount test by `folio_ref_count() == 1` without
    /// allowing for the reference `hugetlb_fault()` itself holds while it
    /// calls `hugetlb_wp()`. A write fault on a mapped page then never
    /// reuses; only the write fault that first instantiates a fresh page
    /// (`hugetlb_no_page()`, which holds no extra reference) does.
    RefcountNaive,
}

/// What a hugetlb COW does when no huge page can be allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HugetlbCowFail {
    /// 6.18: the reservation owner steals the page from its children
    /// (unmap_ref_private()); a non-owner gets SIGBUS.
    Steal,
    /// SIGBUS in the faulting task, owner or not.
    Sigbus,
}

/// What fork does with a present 1 GiB hugetlb entry
/// (mm/hugetlb.c: copy_hugetlb_page_range()).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HugetlbPudFork {
    /// Copy it, as intended and as most runs of 6.18 do.
    Copy,
    /// Skip it: the 6.18 outcome when the child's PUD table page carries a
    /// stale `pt_share_count` (docs/divergences.md §1). The child has no
    /// entry; its first touch faults in a new zeroed page or gets SIGBUS.
    Skip,
}

/// Whether a write fault may reuse a page of a PTE-mapped large anon folio
/// (mm/memory.c: wp_can_reuse_anon_folio()).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LargeAnonReuse {
    /// 6.15 on (1da190f4d0a6 "mm: Copy-on-Write (COW) reuse support for
    /// PTE-mapped THP"): reuse when the folio's MM_ID bookkeeping says one
    /// mm maps it and every reference is a mapping
    /// (`__wp_can_reuse_large_anon_folio()`).
    MmId,
    /// Up to 6.14: a large folio is never reused by that test (only a page
    /// still PageAnonExclusive is); every write to a shared page copies it.
    Never,
}

/// How slow GUP reaches a hugetlb page: through page-table leaves, or
/// through the hugepd directories that powerpc 8xx and e500 used for huge
/// pages until 6.11 removed hugepd. With hugepd, 6.10's
/// `follow_page_mask()` hands a hugepd entry to `follow_hugepd()` (mm/gup.c
/// of 6.10, gone from 6.18), which runs GUP-fast's hugepd walker
/// `gup_hugepte()` under the page-table lock. That walker takes a page only
/// if the entry allows the access (`pte_access_permitted()`: a write needs a
/// writable entry, FOLL_FORCE does not help) and `gup_must_unshare()` does
/// not object; otherwise it takes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hugepd {
    /// No hugepd (x86 and the other architectures): hugetlb pages are PMD
    /// and PUD leaves, followed like THPs (6.18's `follow_page_mask()`).
    Off,
    /// hugepd with Peter Xu's fix to a12083d721d7 ("mm/gup: Fix hugepd
    /// handling in hugetlb rework", April 2024): `follow_hugepd()` passes
    /// the VMA to the walker, and a page that must be unshared makes it
    /// answer -EMLINK, so `__get_user_pages()` takes an unshare fault.
    /// GUP-fast still walks without a VMA and falls back to the slow path.
    Vma,
    /// hugepd as a12083d721d7 "mm/gup: handle hugepd for follow_page()"
    /// first merged (mm-stable, April 2024): the walker gets no VMA, so
    /// `gup_must_unshare()` cannot tell a MAP_SHARED mapping from a
    /// private one and asks to unshare every page-cache page under a R/O
    /// long-term pin; and the walker's "no page" (0) is passed on as "not
    /// present" instead of -EMLINK, so GUP takes a read fault, which finds
    /// the page present and changes nothing, and asks again, forever.
    NoVma,
}

/// What kind of swap device backs the run (mm/memory.c: do_swap_page(),
/// mm/vmscan.c: shrink_folio_list()). Not a kernel rule but the machine's
/// configuration, which decides which of do_swap_page()'s paths runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SwapKind {
    /// A zram device: SWP_SYNCHRONOUS_IO. Writeback completes inside reclaim,
    /// so a paged-out folio is freed at once; a swap-in of a slot referred to
    /// by one swap PTE bypasses the swap cache with a fresh, exclusive folio.
    Zram,
    /// A swap file on a block filesystem: writeback is asynchronous, so
    /// MADV_PAGEOUT leaves the folio in the swap cache, and every swap-in
    /// goes through the swap cache. The default: cow.c's swap cases agree
    /// with the model on a swap file in every observation (on zram the
    /// kernel swaps mTHPs in whole, docs/divergences.md §22).
    #[default]
    File,
}

/// The whole set of rule choices of one run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    pub profile: String,
    pub anon_reuse: AnonReuse,
    pub vmsplice: VmspliceGup,
    pub hugetlb_reuse: HugetlbReuse,
    pub hugetlb_cow_fail: HugetlbCowFail,
    pub hugetlb_pud_fork: HugetlbPudFork,
    // ----- the race explorer's checks (cowlab explore): each one a
    // historical fix that can be switched off to let the explorer find the
    // race it closes. -----
    /// GUP-fast samples `mm->write_protect_seq` before the walk and, for
    /// FOLL_PIN, drops everything if a fork write-protected the mm meanwhile
    /// (mm/gup.c: gup_fast(); 57efa1fe5957 "mm/gup: prevent gup_fast from
    /// racing with COW during fork").
    pub gup_fast_seqcount: bool,
    /// GUP-fast re-reads the PTE (or the PMD/PUD leaf) after grabbing its
    /// folio and backs off if it changed (mm/gup.c: gup_fast_pte_range(),
    /// gup_fast_pmd_leaf(); in the generic GUP-fast since 2667f50e8b81 "mm:
    /// introduce a general RCU get_user_pages_fast()", which could no longer
    /// count on a TLB-flush IPI to hold a zap off).
    pub gup_fast_recheck: bool,
    /// gup_fast_pte_range() also re-reads the PMD that pointed to the PTE
    /// table and backs off if it changed: the table may have been taken
    /// away by a THP collapse (70cbc3cc78a9 "mm: gup: fix the fast GUP race
    /// against THP collapse").
    pub gup_fast_pmd_recheck: bool,
    /// GUP-fast tests PageAnonExclusive of a read-only entry's page after
    /// the pin and the entry recheck (B5 in include/linux/rmap.h) and backs
    /// off to the slow path (which unshares) when it is clear; off, GUP-fast
    /// R/O-pins whatever the entry maps, as before a7f226604170 "mm/gup:
    /// trigger FAULT_FLAG_UNSHARE when R/O-pinning a possibly shared
    /// anonymous page".
    pub gup_fast_ae_recheck: bool,
    /// collapse_huge_page() sends tlb_remove_table_sync_one()'s IPI after
    /// clearing the PMD, which waits for every GUP-fast walking with
    /// interrupts off (2ba99c5e0881 "mm/khugepaged: fix GUP-fast interaction
    /// by sending IPI").
    pub collapse_table_sync: bool,
    /// __collapse_huge_page_isolate() refuses a page with references
    /// other than its mappings (a GUP pin): the check khugepaged has had
    /// since ba76149f47d8 "thp: khugepaged".
    pub collapse_refcount_check: bool,
    /// try_to_unmap_one() clears the PTE before folio_try_share_anon_rmap_pte()
    /// looks for pins and clears PageAnonExclusive (A1 before A2/A3 in
    /// include/linux/rmap.h; 088b8aa537c2 "mm: fix PageAnonExclusive clearing
    /// racing with concurrent RCU GUP-fast"); off, it checks for pins and
    /// clears AE while the PTE is still mapped, then clears it.
    pub swapout_clear_pte_first: bool,
    /// A zap of a hugetlb range frees the pages it gathered
    /// (`tlb_finish_mmu()`) before it lets faults into the VMA again
    /// (`hugetlb_zap_end()`), as mm/memory.c: `zap_page_range_single_batched()`
    /// does in 6.18; off, the VMA lock is dropped first and a fault in
    /// between finds the page restored to the reservation map but not yet
    /// back in the pool: SIGBUS (what hugetlb_fault_after_madv.c tests).
    /// Only interleavings can tell: the explorer takes the lock
    /// (crates/explore), a sequential run frees at once either way.
    pub hugetlb_zap_free_first: bool,
    /// fork gives the child a copy of a maybe-pinned exclusive anon hugetlb
    /// page instead of sharing it (`copy_hugetlb_page_range()`, 4eae4efa2c29,
    /// 5.12); off, as from 5.9 to 5.11, only small pages and THP get that
    /// early copy.
    pub hugetlb_fork_copy_pinned: bool,
    /// x86 protection keys (CPU flags `pku` and `ospke`; on in the default
    /// profile, as on the machines this was first checked on, and a machine
    /// knob: `cowlab diff` and `cowlab fuzz` give the model the live host's
    /// value): a PROT_EXEC-only mapping gets the mm's execute-only key,
    /// whose PKRU bits deny data access, so loads fault and GUP refuses it
    /// (arch/x86/mm/pkeys.c: execute_only_pkey(); mm/mmap.c: do_mmap();
    /// arch_override_mprotect_pkey()). Without them such a mapping is
    /// readable like any present user page.
    pub pkeys: bool,
    /// COW reuse of PTE-mapped large anon folios (see [`LargeAnonReuse`]).
    pub large_anon_reuse: LargeAnonReuse,
    /// CONFIG_PAGE_MAPCOUNT (on here: /proc/config.gz of this machine's
    /// 6.18 kernel) or CONFIG_NO_PAGE_MAPCOUNT. With it, pagemap's
    /// "exclusively mapped" bit of a large folio's page is "this page is
    /// mapped exactly once" and /proc/kpagecount gives the page's own
    /// mapcount; without it, the bit is "the folio is not maybe mapped
    /// shared" and kpagecount gives the folio's average per page
    /// (fs/proc/task_mmu.c: __folio_page_mapped_exclusively(),
    /// fs/proc/page.c: get_kpage_count()). The choice exists since 6.15 (the
    /// series that brought CONFIG_MM_ID); earlier kernels always keep the
    /// per-page mapcounts.
    pub page_mapcount: bool,
    /// The swap device kind (`swap=zram|file`).
    pub swap: SwapKind,
    /// 5.8 only (17839856fd58 "gup: document and work around 'COW can
    /// break either way' issue", removed by a308c71bf1e6 in 5.9): GUP
    /// (FOLL_GET or FOLL_PIN) in a COW mapping is done as a write, so a
    /// shared anonymous page is copied before GUP takes it, even for a
    /// read (`should_force_cow_break()` in `__get_user_pages()`). GUP-fast
    /// takes only writable entries (it walks with FOLL_WRITE added), and a
    /// read-only VMA is handled by the FOLL_COW rule of that release's
    /// `can_follow_write_pte()`: after the write fault broke COW, a dirty
    /// read-only entry is good enough.
    pub gup_cow_break: bool,
    /// hugepd directories for hugetlb and how slow GUP follows them (see
    /// [`Hugepd`]).
    pub hugepd: Hugepd,
}

/// Textual names of an enum knob's values, in one place for `set`, `get`
/// and the knob table.
macro_rules! named_values {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub const NAMES: &'static [&'static str] = &[$($s),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$v => $s),*
                }
            }

            pub fn parse(v: &str) -> Option<Self> {
                match v {
                    $($s => Some(Self::$v),)*
                    _ => None,
                }
            }
        }
    };
}

named_values!(AnonReuse { AnonExclusive => "anon_exclusive", Refcount => "refcount", Mapcount => "mapcount" });
named_values!(VmspliceGup { Get => "get", Pin => "pin" });
named_values!(HugetlbReuse { Mapcount => "mapcount", Refcount => "refcount", RefcountNaive => "refcount_naive" });
named_values!(HugetlbCowFail { Steal => "steal", Sigbus => "sigbus" });
named_values!(HugetlbPudFork { Copy => "copy", Skip => "skip" });
named_values!(LargeAnonReuse { MmId => "mm_id", Never => "never" });
named_values!(SwapKind { File => "file", Zram => "zram" });
named_values!(Hugepd { Off => "off", Vma => "vma", NoVma => "no_vma" });

/// One knob: its name, values, meaning, and how to read and set it. The
/// table [`KNOBS`] is the only list of knobs: `--set`, `cowlab knobs`,
/// `cowlab profiles` and `Display` all go through it.
pub struct Knob {
    pub name: &'static str,
    pub values: &'static [&'static str],
    pub about: &'static str,
    get: fn(&Policy) -> &'static str,
    set: fn(&mut Policy, &str) -> Option<()>,
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn parse_on_off(v: &str) -> Option<bool> {
    match v {
        "on" | "true" | "1" => Some(true),
        "off" | "false" | "0" => Some(false),
        _ => None,
    }
}

const ON_OFF: &[&str] = &["on", "off"];

/// A knob backed by an enum with [`named_values!`] names.
macro_rules! enum_knob {
    ($name:literal, $field:ident, $t:ty, $about:expr) => {
        Knob {
            name: $name,
            values: <$t>::NAMES,
            about: $about,
            get: |p| p.$field.name(),
            set: |p, v| {
                p.$field = <$t>::parse(v)?;
                Some(())
            },
        }
    };
}

/// An on/off knob backed by a bool field.
macro_rules! bool_knob {
    ($name:literal, $field:ident, $about:expr) => {
        Knob {
            name: $name,
            values: ON_OFF,
            about: $about,
            get: |p| on_off(p.$field),
            set: |p, v| {
                p.$field = parse_on_off(v)?;
                Some(())
            },
        }
    };
}

pub const KNOBS: &[Knob] = &[
    enum_knob!("anon_reuse", anon_reuse, AnonReuse, "small anon COW reuse rule: 5.19+ / 5.9-5.18 / pre-5.9 (CVE-2020-29374)"),
    enum_knob!("vmsplice", vmsplice, VmspliceGup, "vmsplice() takes FOLL_GET (6.18) or FOLL_PIN"),
    enum_knob!(
        "hugetlb_reuse",
        hugetlb_reuse,
        HugetlbReuse,
        "hugetlb_wp() reuse rule: mapcount == 1 (6.18), all references explained, or refcount == 1 counting the fault path's own reference"
    ),
    enum_knob!(
        "hugetlb_cow_fail",
        hugetlb_cow_fail,
        HugetlbCowFail,
        "failed hugetlb COW: owner steals via unmap_ref_private (6.18) or SIGBUS"
    ),
    enum_knob!(
        "hugetlb_pud_fork",
        hugetlb_pud_fork,
        HugetlbPudFork,
        "fork of a 1 GiB hugetlb entry: copy, or skip as 6.18 does when a PUD table's pt_share_count is stale"
    ),
    bool_knob!("gup_fast_seqcount", gup_fast_seqcount, "GUP-fast write_protect_seq check for FOLL_PIN (57efa1fe5957, 5.11)"),
    bool_knob!("gup_fast_recheck", gup_fast_recheck, "GUP-fast PTE/leaf recheck after grabbing (2667f50e8b81)"),
    bool_knob!("gup_fast_pmd_recheck", gup_fast_pmd_recheck, "gup_fast_pte_range() rechecks the PMD of its PTE table (70cbc3cc78a9, 6.0)"),
    bool_knob!("gup_fast_ae_recheck", gup_fast_ae_recheck, "GUP-fast tests PageAnonExclusive of a R/O entry after the pin (a7f226604170, 5.19)"),
    bool_knob!(
        "collapse_table_sync",
        collapse_table_sync,
        "THP collapse waits for IRQ-disabled GUP-fast walkers by IPI (2ba99c5e0881, 6.1)"
    ),
    bool_knob!("collapse_refcount_check", collapse_refcount_check, "THP collapse refuses pages with extra references (ba76149f47d8)"),
    bool_knob!(
        "swapout_clear_pte_first",
        swapout_clear_pte_first,
        "swap-out clears the PTE before checking for pins and clearing AE (088b8aa537c2, 6.0)"
    ),
    bool_knob!(
        "hugetlb_zap_free_first",
        hugetlb_zap_free_first,
        "a hugetlb zap frees its pages before hugetlb_zap_end() lets faults in (6.18's zap_page_range_single_batched())"
    ),
    bool_knob!(
        "hugetlb_fork_copy_pinned",
        hugetlb_fork_copy_pinned,
        "fork copies a maybe-pinned anon hugetlb page for the child rather than sharing it (4eae4efa2c29, 5.12)"
    ),
    bool_knob!(
        "pkeys",
        pkeys,
        "x86 protection keys (a machine knob: the live backend runs the value its CPU has): PROT_EXEC-only memory is unreadable to loads and GUP"
    ),
    enum_knob!(
        "large_anon_reuse",
        large_anon_reuse,
        LargeAnonReuse,
        "COW reuse of PTE-mapped large anon folios: by MM_ID bookkeeping (6.15+, 1da190f4d0a6) or never (6.14 and before)"
    ),
    bool_knob!(
        "page_mapcount",
        page_mapcount,
        "CONFIG_PAGE_MAPCOUNT (this machine: on): per-page mapcounts behind pagemap's exclusive bit and kpagecount"
    ),
    enum_knob!(
        "swap",
        swap,
        SwapKind,
        "the swap device: a swap file (pages stay in the swap cache; default) or zram (synchronous, swap-ins of unshared slots skip the swap cache); a live run creates this kind"
    ),
    bool_knob!("gup_cow_break", gup_cow_break, "GUP in a COW mapping breaks COW even for reads (17839856fd58; 5.8 only)"),
    enum_knob!(
        "hugepd",
        hugepd,
        Hugepd,
        "hugetlb behind powerpc hugepd directories: off (x86), vma (6.10 with Peter Xu's fix), no_vma (a12083d721d7 alone: R/O long-term pins of MAP_SHARED hugetlb loop)"
    ),
];

/// Knobs that describe the machine rather than a kernel rule: a live
/// backend honours them by configuring the host (`swap`: it makes such a
/// device) or runs only where the host has them (`pkeys`: the CPU has
/// protection keys or not), and a model run compared with a live one takes
/// the host's (see `crates/live`). Not the machine's size and limits
/// (`Machine` in kernel.rs: RAM, overcommit, map count), which only the
/// model can be given.
pub const MACHINE_KNOBS: &[&str] = &["swap", "pkeys"];

/// What one built-in profile stands for: the commits that made its rules,
/// and what it leaves out. Listed in release order (`cowlab history` walks
/// them in this order).
pub struct ProfileInfo {
    pub name: &'static str,
    /// The architecture line: `x86` for the release chain `cowlab history`
    /// walks by default, `powerpc-hugepd` for the hugepd profiles.
    pub arch: &'static str,
    pub about: &'static str,
    /// The knob values that differ from `linux-6.18`, in groups (the
    /// profile's own values, then one group per later release it
    /// predates); every other knob has its 6.18 value.
    pub knobs: &'static [&'static [(&'static str, &'static str)]],
    /// (commit, title, release it landed in): the changes since the
    /// previous profile of the same line that the knob values stand for.
    pub commits: &'static [(&'static str, &'static str, &'static str)],
    pub leaves_out: &'static str,
}

/// GUP-fast samples the fork seqcount from 5.11 (57efa1fe5957).
const BEFORE_5_11: &[(&str, &str)] = &[("gup_fast_seqcount", "off")];
/// fork copies pinned hugetlb pages from 5.12 (4eae4efa2c29).
const BEFORE_5_12: &[(&str, &str)] = &[("hugetlb_fork_copy_pinned", "off")];
/// GUP-fast rechecks PageAnonExclusive from 5.19, with the flag itself.
const BEFORE_5_19: &[(&str, &str)] = &[("gup_fast_ae_recheck", "off")];
/// The GUP-fast fixes from 6.0 and 6.1 (against collapse and swap-out).
const BEFORE_6_0: &[(&str, &str)] = &[("gup_fast_pmd_recheck", "off"), ("collapse_table_sync", "off"), ("swapout_clear_pte_first", "off")];
/// COW reuse of PTE-mapped large folios from 6.15 (1da190f4d0a6).
const BEFORE_6_15: &[(&str, &str)] = &[("large_anon_reuse", "never")];

/// The profiles, oldest first. How the releases were established is in
/// docs/history.md ("Sources"): the trees of those releases are not
/// stored here, so each release comes from the merge and backport records
/// that name the commit.
pub const PROFILE_INFO: &[ProfileInfo] = &[
    ProfileInfo {
        name: "linux-5.7",
        arch: "x86",
        about: "anonymous COW reuse by mapcount (reuse_swap_page()); GUP never breaks COW; fork does not copy pinned pages: \
                CVE-2020-29374 leaks",
        knobs: &[&[("anon_reuse", "mapcount")], BEFORE_5_11, BEFORE_5_12, BEFORE_5_19, BEFORE_6_0, BEFORE_6_15],
        commits: &[],
        leaves_out: "FOLL_PIN accounting details of 5.7 (the model pins as 6.18 does); mTHP and the selftests' mTHP cases, which \
                     5.7 did not have",
    },
    ProfileInfo {
        name: "linux-5.8",
        arch: "x86",
        about: "as 5.7, but GUP in a COW mapping breaks COW even for reads: vmsplice() and R/O pins copy a shared page first",
        knobs: &[&[("anon_reuse", "mapcount"), ("gup_cow_break", "on")], BEFORE_5_11, BEFORE_5_12, BEFORE_5_19, BEFORE_6_0, BEFORE_6_15],
        commits: &[("17839856fd58", "gup: document and work around \"COW can break either way\" issue", "5.8")],
        leaves_out: "the regressions the forced COW caused (uffd-wp, strace on DAX) that made 5.9 replace it; the model applies \
                     the FOLL_COW rule (a dirty read-only entry after the COW fault will do) to hugetlb too, where 5.8's \
                     follow_hugetlb_page() had its own write test",
    },
    ProfileInfo {
        name: "linux-5.9",
        arch: "x86",
        about: "5.9 and 5.10: anonymous COW reuse iff the refcount is 1, the forced COW of 5.8 removed; fork copies maybe-pinned \
                small pages and THPs (MMF_HAS_PINNED), not yet hugetlb pages; GUP-fast does not yet sample write_protect_seq, so it can race fork",
        knobs: &[&[("anon_reuse", "refcount")], BEFORE_5_11, BEFORE_5_12, BEFORE_5_19, BEFORE_6_0, BEFORE_6_15],
        commits: &[
            ("09854ba94c6a", "mm: do_wp_page() simplification", "5.9"),
            ("a308c71bf1e6", "mm/gup: Remove enfornced COW mechanism", "5.9"),
            ("008cfe4418b3", "mm: Introduce mm_struct.has_pinned", "5.9"),
            ("70e806e4e645", "mm: Do early cow for pinned pages during fork() for ptes", "5.9"),
        ],
        leaves_out: "how 5.9 wrote the early copy at fork (the model takes the 6.18 path, copy_present_pte(), with the \
                     5.9 condition)",
    },
    ProfileInfo {
        name: "linux-5.11",
        arch: "x86",
        about: "as 5.9, and GUP-fast FOLL_PIN backs off when a fork write-protected the mm meanwhile; fork still shares \
                pinned hugetlb pages",
        knobs: &[&[("anon_reuse", "refcount")], BEFORE_5_12, BEFORE_5_19, BEFORE_6_0, BEFORE_6_15],
        commits: &[("57efa1fe5957", "mm/gup: prevent gup_fast from racing with COW during fork", "5.11")],
        leaves_out: "as linux-5.9",
    },
    ProfileInfo {
        name: "linux-5.18",
        arch: "x86",
        about: "5.12 to 5.18: as 5.11, and fork copies pinned hugetlb pages too; still no unshare fault for R/O pins, so R/O \
                pins of shared pages lose coherency",
        knobs: &[&[("anon_reuse", "refcount")], BEFORE_5_19, BEFORE_6_0, BEFORE_6_15],
        commits: &[("4eae4efa2c29", "hugetlb: do early cow when page pinned on src mm", "5.12")],
        leaves_out: "the reuse optimisations of 5.18 for pages in the swap cache and LRU pagevecs (same outcomes under the \
                     refcount rule as the model's)",
    },
    ProfileInfo {
        name: "linux-5.19",
        arch: "x86",
        about: "PageAnonExclusive, unshare faults for R/O pins (slow GUP and GUP-fast); the GUP-fast races of 6.0/6.1 still open",
        knobs: &[BEFORE_6_0, BEFORE_6_15],
        commits: &[
            ("6c287605fd56", "mm: remember exclusively mapped anonymous pages with PG_anon_exclusive", "5.19"),
            ("a7f226604170", "mm/gup: trigger FAULT_FLAG_UNSHARE when R/O-pinning a possibly shared anonymous page", "5.19"),
        ],
        leaves_out: "R/O long-term pins of page-cache pages in private mappings unshare only from 84209e87c696 \"mm/gup: \
                     reliable R/O long-term pinning in COW mappings\" (a later release); the model unshares them as 6.18 does",
    },
    ProfileInfo {
        name: "linux-6.10-rc-ppc-hugepd",
        arch: "powerpc-hugepd",
        about: "powerpc with hugepd (8xx / e500) on mm-stable before 6.10: follow_hugepd() gives GUP-fast's hugepd walker no VMA, \
                so a R/O long-term pin of a MAP_SHARED hugetlb page loops forever (and R/O pins of shared anonymous hugetlb pages too)",
        knobs: &[&[("hugepd", "no_vma"), ("pkeys", "off")], BEFORE_6_15],
        commits: &[("a12083d721d7", "mm/gup: handle hugepd for follow_page()", "6.10-rc (mm-stable, April 2024)")],
        leaves_out: "powerpc's huge page sizes (8xx: 16 KiB, 512 KiB, 8 MiB) and page-table layout: the model keeps 2 MiB and \
                     1 GiB hugetlb so the same tests run; powerpc has no protection keys on 8xx / e500",
    },
    ProfileInfo {
        name: "linux-6.10-ppc-hugepd",
        arch: "powerpc-hugepd",
        about: "powerpc with hugepd as released in 6.10: follow_hugepd() passes the VMA and answers -EMLINK when the page must \
                be unshared",
        knobs: &[&[("hugepd", "vma"), ("pkeys", "off")], BEFORE_6_15],
        commits: &[(
            "(Peter Xu)",
            "mm/gup: Fix hugepd handling in hugetlb rework",
            "6.10; v2 posted 2024-04-30, commit id not stored here",
        )],
        leaves_out: "as linux-6.10-rc-ppc-hugepd; hugepd is gone from 6.11 on",
    },
    ProfileInfo {
        name: "linux-6.14",
        arch: "x86",
        about: "6.1 to 6.14: the GUP-fast fixes against collapse and swap-out; no COW reuse of PTE-mapped large folios",
        knobs: &[BEFORE_6_15],
        commits: &[
            ("088b8aa537c2", "mm: fix PageAnonExclusive clearing racing with concurrent RCU GUP-fast", "6.0"),
            ("70cbc3cc78a9", "mm: gup: fix the fast GUP race against THP collapse", "6.0"),
            ("2ba99c5e0881", "mm/khugepaged: fix GUP-fast interaction by sending IPI", "6.1"),
        ],
        leaves_out: "everything between 6.1 and 6.14 the model does not distinguish (6.10 is modelled as this, plus hugepd \
                     for powerpc)",
    },
    ProfileInfo {
        name: "linux-6.18",
        arch: "x86",
        about: "this machine's kernel (6.15 to 6.18 in the model): COW reuse of PTE-mapped large folios by MM_ID, \
                hugetlb_wp() reuse by mapcount, vmsplice with FOLL_GET (the 8 hugetlb vmsplice XFAILs), \
                unmap_ref_private() on a failed owner COW",
        knobs: &[],
        commits: &[("1da190f4d0a6", "mm: Copy-on-Write (COW) reuse support for PTE-mapped THP", "6.15")],
        leaves_out: "the 1 GiB fork skip of divergences §1 (knob hugetlb_pud_fork=skip)",
    },
];

/// Names of the built-in profiles, oldest first.
pub fn profile_names() -> Vec<&'static str> {
    PROFILE_INFO.iter().map(|i| i.name).collect()
}

impl Default for Policy {
    fn default() -> Self {
        Policy::linux_6_18()
    }
}

impl Policy {
    /// The rules of the kernel this machine boots.
    pub fn linux_6_18() -> Self {
        Policy {
            profile: "linux-6.18".into(),
            anon_reuse: AnonReuse::AnonExclusive,
            vmsplice: VmspliceGup::Get,
            hugetlb_reuse: HugetlbReuse::Mapcount,
            hugetlb_cow_fail: HugetlbCowFail::Steal,
            hugetlb_pud_fork: HugetlbPudFork::Copy,
            gup_fast_seqcount: true,
            gup_fast_recheck: true,
            gup_fast_pmd_recheck: true,
            gup_fast_ae_recheck: true,
            collapse_table_sync: true,
            collapse_refcount_check: true,
            swapout_clear_pte_first: true,
            hugetlb_zap_free_first: true,
            hugetlb_fork_copy_pinned: true,
            pkeys: true,
            large_anon_reuse: LargeAnonReuse::MmId,
            page_mapcount: true,
            swap: SwapKind::default(),
            gup_cow_break: false,
            hugepd: Hugepd::Off,
        }
    }

    /// A built-in profile by name (`default` is `linux-6.18`).
    pub fn profile(name: &str) -> Option<Policy> {
        let name = if name == "default" { "linux-6.18" } else { name };
        let info = PROFILE_INFO.iter().find(|i| i.name == name)?;
        let mut p = Policy::linux_6_18();
        for (k, v) in info.knobs.iter().copied().flatten() {
            p.set(k, v).expect("the profile table names knobs and values that exist");
        }
        p.profile = name.to_string();
        Some(p)
    }

    /// Sets one knob from its textual form.
    pub fn set(&mut self, knob: &str, value: &str) -> Result<(), String> {
        let Some(k) = KNOBS.iter().find(|k| k.name == knob) else {
            return Err(format!(
                "unknown knob `{knob}`; knobs are: {}",
                KNOBS.iter().map(|k| k.name).chain(crate::kernel::MACHINE_LIMITS.iter().map(|k| k.name)).collect::<Vec<_>>().join(", ")
            ));
        };
        (k.set)(self, value).ok_or_else(|| format!("knob `{knob}` takes one of: {}", k.values.join(", ")))
    }

    /// The textual value of one knob (as `set` takes it), or None for an
    /// unknown knob.
    pub fn get(&self, knob: &str) -> Option<&'static str> {
        KNOBS.iter().find(|k| k.name == knob).map(|k| (k.get)(self))
    }

    /// True when R/O FOLL_PIN of a maybe-shared anon page must unshare first
    /// (the 5.19 anon-exclusive design).
    pub fn has_unshare(&self) -> bool {
        self.anon_reuse == AnonReuse::AnonExclusive
    }

    /// True when fork copies maybe-pinned exclusive pages for the child
    /// ("mm: do early cow for pinned pages during fork()", 5.9).
    pub fn fork_copies_pinned(&self) -> bool {
        self.anon_reuse != AnonReuse::Mapcount
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.profile)?;
        for (i, k) in KNOBS.iter().enumerate() {
            write!(f, "{}{}={}", if i == 0 { "" } else { ", " }, k.name, (k.get)(self))?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_reads_back_every_value_it_takes() {
        for k in KNOBS {
            for v in k.values {
                let mut p = Policy::default();
                p.set(k.name, v).unwrap();
                assert_eq!(p.get(k.name), Some(*v), "{}", k.name);
            }
            assert!(Policy::default().set(k.name, "no-such-value").is_err());
        }
        assert_eq!(Policy::default().get("no_such_knob"), None);
    }

    #[test]
    fn every_profile_builds_and_names_only_changed_knobs() {
        let base = Policy::linux_6_18();
        for info in PROFILE_INFO {
            let p = Policy::profile(info.name).unwrap();
            assert_eq!(p.profile, info.name);
            for (k, v) in info.knobs.iter().copied().flatten() {
                assert_ne!(base.get(k), Some(*v), "{}: {k}={v} is the 6.18 value already", info.name);
                assert_eq!(p.get(k), Some(*v), "{}: {k}", info.name);
            }
            assert!(info.arch == "x86" || info.arch == "powerpc-hugepd");
        }
        assert_eq!(Policy::profile("default"), Some(base));
        assert_eq!(Policy::profile("linux-4.4"), None);
    }

    #[test]
    fn display_states_every_knob() {
        let text = Policy::profile("linux-5.8").unwrap().to_string();
        for k in KNOBS {
            assert!(text.contains(&format!("{}=", k.name)), "{} missing from {text}", k.name);
        }
        assert!(!text.contains('?'));
        assert!(text.contains("gup_cow_break=on"));
    }
}
