//! The `flynn-host` daemon: HTTP job API, job state, logs and events.
//!
//! Not built yet: see the open flynn-host issue. This crate holds the workspace slot.
