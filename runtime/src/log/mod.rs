//! Job output: every line of stdout and stderr as one JSON record with a timestamp and the
//! stream it came from, in `log.jsonl` of the job's directory. [`write`] is the shim's side
//! (capturing output, capping and rotating the file), [`read`] the reader's (the last lines,
//! everything, or following the file across rotations, in bounded memory).

pub mod read;
pub mod write;

pub use read::{read_log, LogCursor, LogReader};
pub use write::LogWriter;

/// Longest piece of a line stored in one record.
pub const MAX_LINE: usize = 16 * 1024;
/// The log of a job, newest records.
pub const CURRENT: &str = "log.jsonl";
/// The older half of a job's log, once the log has been rotated.
pub const ROTATED: &str = "log.1.jsonl";
/// Default cap on a job's log on disk (both files together).
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;

pub use runtime_api::{LogLine, Stream};
