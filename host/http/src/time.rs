//! The one timestamp type on every wire: RFC 3339 in UTC with nanoseconds
//! (`2026-12-01T10:00:00.123456789Z`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, written as RFC 3339 UTC with nanoseconds; ordered as time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// The time as chrono's type.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The time `secs` seconds after the Unix epoch.
    pub fn from_unix_seconds(secs: i64) -> Self {
        Self(DateTime::from_timestamp(secs, 0).unwrap_or_default())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Nanos, true))
    }
}

/// A time that is not RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("invalid time {0:?}: use RFC 3339, e.g. 2026-12-01T10:00:00Z")]
pub struct TimestampError(String);

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self(t.with_timezone(&Utc)))
            .map_err(|_| TimestampError(s.to_string()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_with_nanoseconds_and_read_back() {
        let t: Timestamp = "2026-12-01T10:00:00.5+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-12-01T09:00:00.500000000Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!("yesterday".parse::<Timestamp>().is_err());
    }
}
