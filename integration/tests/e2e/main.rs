//! The end-to-end suite, one test binary: every module is one area (the host API, restarts,
//! the runtime's jobs and network, pinkerton's pulls, discoverd, bootstrap, images). Tests
//! that need root are `#[root_test]`; those that need namespaces of their own
//! `#[root_test(isolated)]`.

mod bootstrap;
mod cli;
mod cluster_drain;
mod cluster_etcd;
mod cluster_jobs;
mod cluster_join;
mod cluster_registry;
mod controller_api;
mod controller_etcd;
mod discoverd_api;
mod discoverd_etcd;
mod git_push;
mod host_api;
mod host_hardening;
mod host_network;
mod host_restart;
mod host_restart_policy;
mod host_schemathesis;
mod images_build;
mod images_stack;
mod one_host;
mod pinkerton_auth;
mod pinkerton_errors;
mod pinkerton_import;
mod pinkerton_pull;
mod pinkerton_push;
mod router;
mod router_fast;
mod router_jobs;
mod router_wire;
mod runtime_attach;
mod runtime_hardening;
mod runtime_jobs;
mod runtime_network;
mod runtime_standby;
mod scheduler;
mod slugbuilder;
