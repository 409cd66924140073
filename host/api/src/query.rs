//! The options of `GET /jobs` and `GET /jobs/{id}/logs`, as the client writes them into a
//! query string and the server reads them back.

use flynn_http::{encode, Timestamp};
use runtime_api::{LogLine, Stream};

use crate::job::{Job, JobState};

/// Which lines of a job's log to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep sending new lines until the job has ended (`follow=true`).
    pub follow: bool,
    /// Only the last N lines that already exist (`tail=N`).
    pub tail: Option<usize>,
    /// Only lines at or after this time (`since=RFC3339`).
    pub since: Option<Timestamp>,
    /// Only this stream (`stream=stdout|stderr`).
    pub stream: Option<Stream>,
}

impl LogOptions {
    /// True when `line` passes the stream and time filters.
    pub fn wants(&self, line: &LogLine) -> bool {
        self.stream.is_none_or(|s| s == line.stream)
            && self.since.is_none_or(|since| line.time >= since)
    }

    /// The query string (without `?`).
    pub fn to_query(&self) -> String {
        let mut q = Vec::new();
        if self.follow {
            q.push("follow=true".to_string());
        }
        if let Some(n) = self.tail {
            q.push(format!("tail={n}"));
        }
        if let Some(t) = &self.since {
            q.push(format!("since={}", encode(&t.to_string())));
        }
        if let Some(s) = self.stream {
            q.push(format!(
                "stream={}",
                match s {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                }
            ));
        }
        q.join("&")
    }
}

/// Which jobs `GET /jobs` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state (`state=`).
    pub state: Option<JobState>,
    /// Only jobs of this image, as given at creation (`image=`).
    pub image: Option<String>,
    /// Only jobs with all these labels (`metadata=KEY=VALUE`, repeatable).
    pub metadata: Vec<(String, String)>,
}

impl JobFilter {
    /// True when `job` passes the filter.
    pub fn matches(&self, job: &Job) -> bool {
        self.state.is_none_or(|s| job.state == s)
            && self
                .image
                .as_deref()
                .is_none_or(|i| job.config.config.image == i)
            && self
                .metadata
                .iter()
                .all(|(k, v)| job.config.metadata.get(k) == Some(v))
    }

    /// The query string (without `?`).
    pub fn to_query(&self) -> String {
        let mut q = Vec::new();
        if let Some(s) = self.state {
            q.push(format!("state={s}"));
        }
        if let Some(i) = &self.image {
            q.push(format!("image={}", encode(i)));
        }
        for (k, v) in &self.metadata {
            q.push(format!("metadata={}", encode(&format!("{k}={v}"))));
        }
        q.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_their_values() {
        let f = JobFilter {
            state: Some(JobState::Running),
            image: Some("127.0.0.1:5000/a b".into()),
            metadata: vec![("app".into(), "web&1".into())],
        };
        assert_eq!(
            f.to_query(),
            "state=running&image=127%2E0%2E0%2E1%3A5000%2Fa%20b&metadata=app%3Dweb%261"
        );
        let o = LogOptions {
            follow: true,
            tail: Some(3),
            ..Default::default()
        };
        assert_eq!(o.to_query(), "follow=true&tail=3");
    }
}
