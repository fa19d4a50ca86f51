//! The cowlab model kernel.
//!
//! An executable, byte-accurate model of the part of Linux memory management
//! where GUP, copy-on-write, fork and hugetlb meet. The whole system is one
//! `Clone + Eq + Hash` value, [`Kernel`]; programs drive it through
//! system-call-like methods whose outcomes (errno, signals) are values.
//! Files mirror the kernel's own layout: a rule lives where an mm developer
//! would look for it (`memory.rs` for `do_wp_page()`, `gup_fast.rs` for
//! `gup_fast_pte_range()`, `hugetlb.rs` for `hugetlb_wp()` …).
//!
//! [`Contents`] is the one byte-string type of the project: the scenario
//! language and the live backend's protocol use it too.
#![forbid(unsafe_code)]
// The rules' docs point at the private functions that carry them: they
// are read with `cargo doc --document-private-items`, where those links
// resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod contents;
pub mod direct_io;
pub mod events;
pub mod exit;
pub mod folio;
pub mod fork;
pub mod gup;
pub mod gup_fast;
pub mod huge_memory;
pub mod hugetlb;
pub mod invariants;
pub mod io_uring;
pub mod kernel;
pub mod khugepaged;
pub mod madvise;
pub mod memory;
pub mod mempolicy;
pub mod migrate;
pub mod mmap;
pub mod mmap_lock;
pub mod mprotect;
pub mod mremap;
pub mod oom_kill;
pub mod pgtable;
pub mod policy;
pub mod proc_base;
pub mod process_vm_access;
pub mod rmap;
pub mod shm;
pub mod shmem;
pub mod splice;
pub mod swap;
pub mod task_mmu;
pub mod types;
pub mod uaccess;
pub mod userfaultfd;
pub mod util;
pub mod view;
pub mod vma;
pub mod work;

pub use contents::Contents;
pub use events::{Event, EventKind, Stats};
pub use folio::{FolioId, InodeId, MmId};
pub use gup::{GupFlags, PageList};
pub use hugetlb::Hstate;
pub use invariants::InvariantViolation;
pub use kernel::{GupHandle, Kernel, Settings, TaskState, ThpMode};
pub use madvise::Advice;
pub use mmap::MmapRequest;
pub use policy::Policy;
pub use shmem::InodeKind;
pub use task_mmu::{FolioInfo, PagemapEntry};
pub use types::*;
pub use work::WorkCounter;

/// The hash of `x` (for tests that check equal states hash alike).
#[cfg(test)]
pub(crate) fn hash_of<T: std::hash::Hash>(x: &T) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(x)
}
