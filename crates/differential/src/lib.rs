//! Differential testing: one scenario on two backends (the model and the
//! live kernel), compared observation by observation.
//!
//! The files depend on each other in one direction only:
//!
//! - [`record`]: a backend wrapper that records calls and observations in
//!   a form that lines up across backends;
//! - [`known`]: the divergences docs/divergences.md explains, recognised
//!   from recorded facts;
//! - [`diff`]: compares two records and labels what [`known`] explains
//!   (`cowlab diff`);
//! - [`fuzz`]: the campaign over random scenarios from
//!   [`suites::random`]: diff each, shrink and write out what no entry
//!   explains (`cowlab fuzz`).
//!
//! The backends themselves are elsewhere: the model in `scenario::model`,
//! the kernel in `live`.
// The rules' docs point at the private functions that carry them: they
// are read with `cargo doc --document-private-items`, where those links
// resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod diff;
pub mod fuzz;
pub mod known;
pub mod record;
