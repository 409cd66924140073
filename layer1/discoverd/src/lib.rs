//! Service discovery for layer 1.
//!
//! Not built yet: see the open images/discoverd issue. This crate holds the workspace slot.
