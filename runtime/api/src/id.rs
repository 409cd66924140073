//! Job ids (and the name rule volumes share).

use serde::{Deserialize, Serialize};

/// A job id: 1-64 of `[A-Za-z0-9_.-]`, not starting with `.` or `-` (it names files and
/// cgroups).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

/// A job id that is not valid.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid job id {0:?}: use 1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
)]
pub struct JobIdError(String);

impl JobId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True for names usable as job ids and volume names (and so as file and cgroup names):
/// 1-64 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl TryFrom<String> for JobId {
    type Error = JobIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if valid_name(&s) {
            Ok(Self(s))
        } else {
            Err(JobIdError(s))
        }
    }
}

impl std::str::FromStr for JobId {
    type Err = JobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_string())
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl AsRef<str> for JobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for JobId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for JobId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

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
