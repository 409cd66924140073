//! What a job reports while and after it runs: its log records and how it ended.

use flynn_http::Timestamp;
use serde::{Deserialize, Serialize};

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// True when the kernel's OOM killer killed a process of the job.
    pub oom_killed: bool,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl std::str::FromStr for Stream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stdout" => Ok(Stream::Stdout),
            "stderr" => Ok(Stream::Stderr),
            _ => Err(format!("unknown stream {s:?}: use stdout or stderr")),
        }
    }
}

/// One record of a job's log: a JSON object a line on disk and on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the line was read.
    pub time: Timestamp,
    /// The stream.
    pub stream: Stream,
    /// The text, without its newline (invalid UTF-8 replaced).
    pub line: String,
    /// True when the text is not a whole line (split, or the output ended without a newline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}
