//! Image import without Docker: a Docker Registry v2 / OCI distribution client, a
//! content-addressed store of blobs and unpacked layers, safe layer unpack in overlayfs form,
//! rootfs flattening, and `docker save` / OCI layout import.

pub mod append;
pub(crate) mod archive;
pub mod config;
pub mod digest;
pub mod import;
pub mod layer;
pub mod manifest;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod unpack;
