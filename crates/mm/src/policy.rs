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
    /// Before 5.8: reuse iff the page is mapped once (reuse_swap_page()),
    /// whatever other references exist — the rule behind CVE-2020-29374.
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
    /// x86 protection keys (CPU flags `pku` and `ospke`, as this machine
    /// has them): a PROT_EXEC-only mapping gets the mm's execute-only key,
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
}

/// Description of one knob, for `cowlab policies` and error messages.
pub struct Knob {
    pub name: &'static str,
    pub values: &'static [&'static str],
    pub about: &'static str,
}

pub const KNOBS: &[Knob] = &[
    Knob {
        name: "anon_reuse",
        values: &["anon_exclusive", "refcount", "mapcount"],
        about: "small anon COW reuse rule: 5.19+ / 5.9-5.18 / pre-5.8 (CVE-2020-29374)",
    },
    Knob { name: "vmsplice", values: &["get", "pin"], about: "vmsplice() takes FOLL_GET (6.18) or FOLL_PIN" },
    Knob {
        name: "hugetlb_reuse",
        values: &["mapcount", "refcount", "refcount_naive"],
        about: "hugetlb_wp() reuse rule: mapcount == 1 (6.18), all references explained, or refcount == 1 counting the fault path's own reference",
    },
    Knob {
        name: "hugetlb_cow_fail",
        values: &["steal", "sigbus"],
        about: "failed hugetlb COW: owner steals via unmap_ref_private (6.18) or SIGBUS",
    },
    Knob {
        name: "hugetlb_pud_fork",
        values: &["copy", "skip"],
        about: "fork of a 1 GiB hugetlb entry: copy, or skip as 6.18 does when a PUD table's pt_share_count is stale",
    },
    Knob { name: "gup_fast_seqcount", values: &["on", "off"], about: "GUP-fast write_protect_seq check for FOLL_PIN (57efa1fe5957)" },
    Knob { name: "gup_fast_recheck", values: &["on", "off"], about: "GUP-fast PTE/leaf recheck after grabbing (2667f50e8b81)" },
    Knob {
        name: "gup_fast_pmd_recheck",
        values: &["on", "off"],
        about: "gup_fast_pte_range() rechecks the PMD of its PTE table (70cbc3cc78a9)",
    },
    Knob {
        name: "gup_fast_ae_recheck",
        values: &["on", "off"],
        about: "GUP-fast tests PageAnonExclusive of a R/O entry after the pin (a7f226604170)",
    },
    Knob {
        name: "collapse_table_sync",
        values: &["on", "off"],
        about: "THP collapse waits for IRQ-disabled GUP-fast walkers by IPI (2ba99c5e0881)",
    },
    Knob {
        name: "collapse_refcount_check",
        values: &["on", "off"],
        about: "THP collapse refuses pages with extra references (ba76149f47d8)",
    },
    Knob {
        name: "swapout_clear_pte_first",
        values: &["on", "off"],
        about: "swap-out clears the PTE before checking for pins and clearing AE (088b8aa537c2)",
    },
    Knob {
        name: "hugetlb_zap_free_first",
        values: &["on", "off"],
        about: "a hugetlb zap frees its pages before hugetlb_zap_end() lets faults in (6.18's zap_page_range_single_batched())",
    },
    Knob {
        name: "pkeys",
        values: &["on", "off"],
        about: "x86 protection keys (this machine: on): PROT_EXEC-only memory is unreadable to loads and GUP",
    },
    Knob {
        name: "large_anon_reuse",
        values: &["mm_id", "never"],
        about: "COW reuse of PTE-mapped large anon folios: by MM_ID bookkeeping (6.15+, 1da190f4d0a6) or never (6.14 and before)",
    },
    Knob {
        name: "page_mapcount",
        values: &["on", "off"],
        about: "CONFIG_PAGE_MAPCOUNT (this machine: on): per-page mapcounts behind pagemap's exclusive bit and kpagecount",
    },
    Knob {
        name: "swap",
        values: &["file", "zram"],
        about: "the swap device: a swap file (pages stay in the swap cache; default) or zram (synchronous, swap-ins of unshared slots skip the swap cache); a live run creates this kind",
    },
];

/// Knobs that describe the machine rather than a kernel rule: a live
/// backend honours them by configuring the host (see `crates/live`).
pub const MACHINE_KNOBS: &[&str] = &["swap"];
/// What one built-in profile stands for: the commits that made its rules,
/// and what it leaves out. Listed in release order (`cowlab history` walks
/// them in this order).
pub struct ProfileInfo {
    pub name: &'static str,
    pub about: &'static str,
    /// (commit, title, release it landed in): the changes since the
    /// previous profile that the knob values stand for.
    pub commits: &'static [(&'static str, &'static str, &'static str)],
    pub leaves_out: &'static str,
}

/// The profiles, oldest first. Commit ids and titles were checked against
/// the linux-mm/LKML threads that cite them, releases against those
/// threads' dates and reports (not against the trees of those releases,
/// which this project does not have): 17839856fd58 was merged for 5.8 and
/// replaced by 09854ba94c6a and a308c71bf1e6 in 5.9; 70e806e4e645 is dated
/// 2020-09-27 (5.9); 6c287605fd56 is the 5.19 PG_anon_exclusive series.
pub const PROFILE_INFO: &[ProfileInfo] = &[
    ProfileInfo {
        name: "linux-5.7",
        about: "anonymous COW reuse by mapcount (reuse_swap_page()); GUP never breaks COW; fork does not copy pinned pages: \
                CVE-2020-29374 leaks",
        commits: &[],
        leaves_out: "17839856fd58 (5.8: GUP breaks COW even for reads), which no profile models yet; GUP-fast's \
                     write_protect_seq check (57efa1fe5957, added later) is on as in 6.18",
    },
    ProfileInfo {
        name: "linux-5.18",
        about: "anonymous COW reuse iff the page's refcount is 1; fork copies maybe-pinned pages (MMF_HAS_PINNED); no unshare \
                fault for R/O pins, so R/O pins of shared pages lose coherency",
        commits: &[
            ("09854ba94c6a", "mm: do_wp_page() simplification", "5.9"),
            ("a308c71bf1e6", "mm/gup: Remove enfornced COW mechanism", "5.9"),
            ("008cfe4418b3", "mm: Introduce mm_struct.has_pinned", "5.9"),
            ("70e806e4e645", "mm: Do early cow for pinned pages during fork() for ptes", "5.9"),
        ],
        leaves_out: "the 5.18 FAULT_FLAG_UNSHARE for THP and hugetlb (mapcount based); GUP-fast's write_protect_seq check is on as in \
                     6.18",
    },
    ProfileInfo {
        name: "linux-6.18",
        about: "this machine's kernel: PageAnonExclusive, unshare faults for R/O pins, hugetlb_wp() reuse by mapcount, \
                vmsplice with FOLL_GET (the 8 hugetlb vmsplice XFAILs), unmap_ref_private() on a failed owner COW",
        commits: &[("6c287605fd56", "mm: remember exclusively mapped anonymous pages with PG_anon_exclusive", "5.19")],
        leaves_out: "the 1 GiB fork skip of divergences §1 (knob hugetlb_pud_fork=skip)",
    },
];

/// Names of the built-in profiles.
pub const PROFILES: &[&str] = &["linux-6.18", "linux-5.18", "linux-5.7"];

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
            pkeys: true,
            large_anon_reuse: LargeAnonReuse::MmId,
            page_mapcount: true,
            swap: SwapKind::default(),
        }
    }

    /// A built-in profile by name.
    pub fn profile(name: &str) -> Option<Policy> {
        let mut p = Policy::linux_6_18();
        match name {
            "linux-6.18" | "default" => {}
            "linux-5.18" => p.anon_reuse = AnonReuse::Refcount,
            "linux-5.7" => p.anon_reuse = AnonReuse::Mapcount,
            _ => return None,
        }
        p.profile = name.to_string();
        Some(p)
    }

    /// Sets one knob from its textual form.
    pub fn set(&mut self, knob: &str, value: &str) -> Result<(), String> {
        let bad = || {
            let k = KNOBS.iter().find(|k| k.name == knob);
            match k {
                Some(k) => format!("knob `{knob}` takes one of: {}", k.values.join(", ")),
                None => format!(
                    "unknown knob `{knob}`; knobs are: {}",
                    KNOBS.iter().map(|k| k.name).chain(crate::kernel::MACHINE_LIMITS.iter().map(|k| k.name)).collect::<Vec<_>>().join(", ")
                ),
            }
        };
        let on_off = |v: &str| match v {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(bad()),
        };
        match (knob, value) {
            ("anon_reuse", "anon_exclusive") => self.anon_reuse = AnonReuse::AnonExclusive,
            ("anon_reuse", "refcount") => self.anon_reuse = AnonReuse::Refcount,
            ("anon_reuse", "mapcount") => self.anon_reuse = AnonReuse::Mapcount,
            ("vmsplice", "get") => self.vmsplice = VmspliceGup::Get,
            ("vmsplice", "pin") => self.vmsplice = VmspliceGup::Pin,
            ("hugetlb_reuse", "mapcount") => self.hugetlb_reuse = HugetlbReuse::Mapcount,
            ("hugetlb_reuse", "refcount") => self.hugetlb_reuse = HugetlbReuse::Refcount,
            ("hugetlb_reuse", "refcount_naive") => self.hugetlb_reuse = HugetlbReuse::RefcountNaive,
            ("hugetlb_cow_fail", "steal") => self.hugetlb_cow_fail = HugetlbCowFail::Steal,
            ("hugetlb_cow_fail", "sigbus") => self.hugetlb_cow_fail = HugetlbCowFail::Sigbus,
            ("hugetlb_pud_fork", "copy") => self.hugetlb_pud_fork = HugetlbPudFork::Copy,
            ("hugetlb_pud_fork", "skip") => self.hugetlb_pud_fork = HugetlbPudFork::Skip,
            ("gup_fast_seqcount", v) => self.gup_fast_seqcount = on_off(v)?,
            ("gup_fast_recheck", v) => self.gup_fast_recheck = on_off(v)?,
            ("gup_fast_pmd_recheck", v) => self.gup_fast_pmd_recheck = on_off(v)?,
            ("gup_fast_ae_recheck", v) => self.gup_fast_ae_recheck = on_off(v)?,
            ("collapse_table_sync", v) => self.collapse_table_sync = on_off(v)?,
            ("collapse_refcount_check", v) => self.collapse_refcount_check = on_off(v)?,
            ("swapout_clear_pte_first", v) => self.swapout_clear_pte_first = on_off(v)?,
            ("hugetlb_zap_free_first", v) => self.hugetlb_zap_free_first = on_off(v)?,
            ("pkeys", v) => self.pkeys = on_off(v)?,
            ("large_anon_reuse", "mm_id") => self.large_anon_reuse = LargeAnonReuse::MmId,
            ("large_anon_reuse", "never") => self.large_anon_reuse = LargeAnonReuse::Never,
            ("page_mapcount", v) => self.page_mapcount = on_off(v)?,
            ("swap", v) => self.swap = SwapKind::parse(v).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// The textual value of one knob (as `set` takes it), or None for an
    /// unknown knob.
    pub fn get(&self, knob: &str) -> Option<&'static str> {
        let on_off = |b: bool| if b { "on" } else { "off" };
        Some(match knob {
            "anon_reuse" => match self.anon_reuse {
                AnonReuse::AnonExclusive => "anon_exclusive",
                AnonReuse::Refcount => "refcount",
                AnonReuse::Mapcount => "mapcount",
            },
            "vmsplice" => match self.vmsplice {
                VmspliceGup::Get => "get",
                VmspliceGup::Pin => "pin",
            },
            "hugetlb_reuse" => match self.hugetlb_reuse {
                HugetlbReuse::Mapcount => "mapcount",
                HugetlbReuse::Refcount => "refcount",
                HugetlbReuse::RefcountNaive => "refcount_naive",
            },
            "hugetlb_cow_fail" => match self.hugetlb_cow_fail {
                HugetlbCowFail::Steal => "steal",
                HugetlbCowFail::Sigbus => "sigbus",
            },
            "hugetlb_pud_fork" => match self.hugetlb_pud_fork {
                HugetlbPudFork::Copy => "copy",
                HugetlbPudFork::Skip => "skip",
            },
            "gup_fast_seqcount" => on_off(self.gup_fast_seqcount),
            "gup_fast_recheck" => on_off(self.gup_fast_recheck),
            _ => return None,
        })
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

impl SwapKind {
    pub fn parse(v: &str) -> Option<SwapKind> {
        match v {
            "zram" => Some(SwapKind::Zram),
            "file" => Some(SwapKind::File),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SwapKind::Zram => "zram",
            SwapKind::File => "file",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (anon_reuse={}, vmsplice={}, hugetlb_reuse={}, hugetlb_cow_fail={}, hugetlb_pud_fork={}, gup_fast_seqcount={}, gup_fast_recheck={}, gup_fast_pmd_recheck={}, gup_fast_ae_recheck={}, collapse_table_sync={}, collapse_refcount_check={}, swapout_clear_pte_first={}, hugetlb_zap_free_first={}, pkeys={}, large_anon_reuse={}, page_mapcount={}, swap={})",
            self.profile,
            match self.anon_reuse {
                AnonReuse::AnonExclusive => "anon_exclusive",
                AnonReuse::Refcount => "refcount",
                AnonReuse::Mapcount => "mapcount",
            },
            match self.vmsplice {
                VmspliceGup::Get => "get",
                VmspliceGup::Pin => "pin",
            },
            match self.hugetlb_reuse {
                HugetlbReuse::Mapcount => "mapcount",
                HugetlbReuse::Refcount => "refcount",
                HugetlbReuse::RefcountNaive => "refcount_naive",
            },
            match self.hugetlb_cow_fail {
                HugetlbCowFail::Steal => "steal",
                HugetlbCowFail::Sigbus => "sigbus",
            },
            match self.hugetlb_pud_fork {
                HugetlbPudFork::Copy => "copy",
                HugetlbPudFork::Skip => "skip",
            },
            if self.gup_fast_seqcount { "on" } else { "off" },
            if self.gup_fast_recheck { "on" } else { "off" },
            on_off(self.gup_fast_pmd_recheck),
            on_off(self.gup_fast_ae_recheck),
            on_off(self.collapse_table_sync),
            on_off(self.collapse_refcount_check),
            on_off(self.swapout_clear_pte_first),
            on_off(self.hugetlb_zap_free_first),
            if self.pkeys { "on" } else { "off" },
            match self.large_anon_reuse {
                LargeAnonReuse::MmId => "mm_id",
                LargeAnonReuse::Never => "never",
            },
            if self.page_mapcount { "on" } else { "off" },
            self.swap.name(),
        )
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}
