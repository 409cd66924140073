//! Builds the images of layer-1 services without Docker.
//!
//! Not built yet: see the open images/discoverd issue. This crate holds the workspace slot.
