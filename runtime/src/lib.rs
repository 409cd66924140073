//! Runs jobs on raw namespaces and cgroups (youki libcontainer), with bridge networking.
//!
//! Not built yet: see the open runtime issue. This crate holds the workspace slot.
