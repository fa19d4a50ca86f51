//! The event log: what the kernel did, in the order it did it, for traces.

use crate::types::Pid;
use std::fmt;

/// Coarse class of an event, for counting (pages copied, signals, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A page fault was handled (the message names the handler).
    Fault,
    /// An existing page was reused for writing or unsharing.
    Reuse,
    /// A page was copied (COW or unshare, or fork's early copy).
    Copy,
    /// A fresh page was allocated and zeroed, or the zero page mapped.
    Alloc,
    /// A PMD mapping or a folio was split.
    Split,
    /// References were taken or dropped by GUP.
    Gup,
    /// GUP-fast gave up on an entry and left it to the slow path.
    Bail,
    /// A task received a signal.
    Signal,
    /// Swap out or swap in.
    Swap,
    /// hugetlb pool or reservation activity.
    Hugetlb,
    /// A line the kernel writes to its log (printk), worded exactly as
    /// the 6.18 source has it; the event's detail is the line.
    Printk,
    /// Anything else worth a line in the trace.
    Note,
}

/// One thing the kernel did, attributed to the task it did it for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub pid: Pid,
    pub kind: EventKind,
    /// The kernel function that made the decision.
    pub func: &'static str,
    pub addr: Option<u64>,
    pub detail: String,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.func)?;
        if let Some(a) = self.addr {
            write!(f, " @{a:#x}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The log itself. It is history, not state: two kernels that differ only
/// in their logs are the same state, so `Eq` and `Hash` ignore it (the
/// explorer deduplicates states through them).
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    pub(crate) events: Vec<Event>,
    pub(crate) disabled: bool,
}

impl PartialEq for EventLog {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EventLog {}

impl std::hash::Hash for EventLog {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Running totals of what the kernel did: the costs the policy lab compares.
/// Each is counted in the kernel function that causes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Base pages copied (a 2 MiB hugetlb copy counts 512).
    pub pages_copied: u64,
    /// Copies, whatever their size.
    pub copies: u64,
    /// Copies by the size of the page copied: 4 KiB pages (COW, unshare,
    /// fork's early copy), 2 MiB pages (hugetlb COW and fork's early copy,
    /// MADV_COLLAPSE into a PMD-mapped THP) and 1 GiB hugetlb pages.
    pub copied_4k: u64,
    pub copied_2m: u64,
    pub copied_1g: u64,
    /// Copies made by an unshare fault (a R/O pin of a maybe-shared page),
    /// any size: the price of FOLL_PIN taken at pin time.
    pub unshare_copies: u64,
    /// Faults handled.
    pub faults: u64,
    /// Signals delivered.
    pub signals: u64,
    /// Tasks killed by SIGBUS (`force_sig_fault()` with SIGBUS).
    pub sigbus: u64,
    /// `hugetlb_wp()` reused a page that was already mapped (called from
    /// `hugetlb_fault()`, not for a page `hugetlb_no_page()` just made).
    pub hugetlb_reuses_mapped: u64,
    /// hugetlb pages stolen from children by unmap_ref_private().
    pub stolen: u64,
    /// Operations the model gave up on because the kernel would retry
    /// forever (a fault that never makes progress).
    pub livelocks: u64,
    /// Most hugetlb pages of each size (2 MiB, 1 GiB) ever in use at once
    /// (`HugePages_Total - HugePages_Free`), surplus pages included.
    pub hugetlb_peak_2m: u64,
    pub hugetlb_peak_1g: u64,
}
