//! How much work the model has done, readable from another thread while a
//! long operation runs (the `cowlab run` progress line).
//!
//! Not a kernel counter and not an observation: no outcome, statistic or
//! invariant reads it, it compares equal and hashes to nothing (two kernels
//! that differ only in it are the same state), and clones of a kernel share
//! one count. The long loops bump it once per leaf or folio they finish
//! (stores, loads, populate, GUP, fork's copy, zap, pageout, MADV_FREE), by the pages
//! that leaf covers, with a relaxed add: a reader sees a number that only
//! grows and is roughly "pages handled so far".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A shared count of pages handled; see the module documentation.
#[derive(Clone, Default)]
pub struct WorkCounter(Arc<AtomicU64>);

impl WorkCounter {
    /// Counts `pages` more pages handled.
    #[inline]
    pub fn add(&self, pages: u64) {
        self.0.fetch_add(pages, Ordering::Relaxed);
    }

    /// The pages handled so far by every clone of the kernel that owns it.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The count itself, for a reader on another thread that knows nothing
    /// of `mm` (the scenario backends hand it out as a plain atomic).
    pub fn shared(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.0)
    }
}

/// Not part of the state: every counter equals every other.
impl PartialEq for WorkCounter {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for WorkCounter {}

/// Not part of the state: hashes to nothing, so a kernel's hash does not
/// depend on how much work led to it.
impl std::hash::Hash for WorkCounter {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Prints no number, so a kernel's `Debug` text does not depend on it.
impl std::fmt::Debug for WorkCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkCounter")
    }
}
