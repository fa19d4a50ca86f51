//! Scenario generators: the cow and gup_longterm matrices, policy-lab and
//! random scenarios. Placeholder so the workspace loads until this crate is
//! written.
#![forbid(unsafe_code)]
