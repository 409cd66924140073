//! What `#[root_test]` runs before a test's body: the root check and, for isolated tests,
//! the re-run in namespaces of its own.

/// The name the test harness knows a test by: its module path without the crate, then the
/// function.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, modules)) => format!("{modules}::{function}"),
        None => function.to_string(),
    }
}

/// True when the test's body should run in this process: as root (outside CI a test that is
/// not root is skipped loudly; in CI it fails), and for `isolated` tests only inside their own
/// namespaces (the outer process re-runs the test there and checks that it passed).
pub fn enter(module_path: &str, function: &str, isolated: bool) -> bool {
    let name = test_name(module_path, function);
    crate::require_root(&name) && (!isolated || crate::ns::isolated(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_module_paths_without_the_crate() {
        assert_eq!(test_name("e2e::host_api", "jobs_run"), "host_api::jobs_run");
        assert_eq!(test_name("e2e", "jobs_run"), "jobs_run");
    }
}
