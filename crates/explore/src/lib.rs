//! The race explorer: every interleaving of the model kernel's racing
//! paths, checked.
//!
//! GUP-fast walks page tables with no lock while fork, zap, the write fault,
//! THP collapse and swap-out change them. mm splits each of those paths
//! into atomic steps at the points where the kernel reads without a lock or
//! takes or drops one (the same step machines sequential runs drive back to
//! back). This crate runs several of them as tasks of a [`model::Race`], a
//! stateright [`stateright::Model`] whose state is the whole `Kernel` plus
//! each task's machine, lets stateright's checker enumerate the
//! interleavings breadth-first, and judges the properties in
//! [`model`] in every state. [`check`] turns the answer into statistics and
//! the shortest counterexample, replayed with the kernel's event log on and
//! printed one column per task; [`races`] holds the historical races and
//! [`file`](mod@file) turns a scenario file's `race { }` block into a race.
//!
//! Locks between the tasks are the explorer's business, not the machines':
//! `mmap_lock` (read or write), one page-table lock per mm, and GUP-fast's
//! interrupt-disabled section, which holds off the IPI of
//! `tlb_remove_table_sync_one()` ([`task::Machine`]).
#![forbid(unsafe_code)]

pub mod check;
pub mod file;
pub mod model;
pub mod races;
pub mod task;
