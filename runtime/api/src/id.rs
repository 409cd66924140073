//! Job ids (and the name rule volumes share).

/// True for names usable as job ids and volume names (and so as file and cgroup names):
/// 1-64 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

flynn_http::checked_name!(
    /// A job id: 1-64 of `[A-Za-z0-9_.-]`, not starting with `.` or `-` (it names files and
    /// cgroups).
    JobId,
    JobIdError,
    valid_name,
    "job id",
    "use 1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids() {
        assert!("web-1.a_b".parse::<JobId>().is_ok());
        for bad in ["", "-x", ".x", "a/b", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<JobId>().is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<JobId>(r#""../x""#).is_err());
    }
}
