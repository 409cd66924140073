//! Job output: every line of stdout and stderr as one JSON record with a timestamp and the
//! stream it came from. Lines longer than [`MAX_LINE`] are split into records marked partial;
//! output that ends without a newline is kept as a final partial record.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Longest piece of a line stored in one record.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One record of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the line was read, RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// The stream.
    pub stream: Stream,
    /// The text, without its newline (invalid UTF-8 replaced).
    pub line: String,
    /// True when the text is not a whole line (split, or the output ended without a newline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// Appends records to a log file; shared by the stdout and stderr pumps.
#[derive(Debug)]
pub struct LogWriter {
    file: Mutex<File>,
}

impl LogWriter {
    /// Opens (creating) the log at `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    fn write(&self, stream: Stream, bytes: &[u8], partial: bool) -> io::Result<()> {
        let rec = LogLine {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            stream,
            line: String::from_utf8_lossy(bytes).into_owned(),
            partial,
        };
        let mut json = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        json.push(b'\n');
        // One write per record under the lock: records never interleave.
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&json)
    }

    /// Copies `input` into the log as `stream` until EOF, handing every chunk read to `tee`
    /// first (attached clients see output as it comes, not line by line). A terminal's EIO
    /// (every writer of the other side closed) counts as EOF.
    pub fn pump(
        &self,
        mut input: impl Read,
        stream: Stream,
        mut tee: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut line: Vec<u8> = Vec::with_capacity(1024);
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                Err(e) => return Err(e),
            };
            tee(&buf[..n]);
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let end = rest.iter().position(|&b| b == b'\n');
                let take = end.unwrap_or(rest.len());
                line.extend_from_slice(&rest[..take]);
                while line.len() > MAX_LINE {
                    self.write(stream, &line[..MAX_LINE], true)?;
                    line.drain(..MAX_LINE);
                }
                match end {
                    Some(i) => {
                        self.write(stream, &line, false)?;
                        line.clear();
                        rest = &rest[i + 1..];
                    }
                    None => rest = &[],
                }
            }
        }
        if !line.is_empty() {
            self.write(stream, &line, true)?;
        }
        Ok(())
    }
}

/// Reads every record of a log; a torn last record (a crash mid-write) is skipped.
pub fn read_log(path: &Path) -> io::Result<Vec<LogLine>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        if let Ok(rec) = serde_json::from_str(&line?) {
            out.push(rec);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_long_lines_and_unterminated_output() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("log");
        let w = LogWriter::open(&path).unwrap();
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("one\n\ntwo\n{long}\nlast");
        w.pump(input.as_bytes(), Stream::Stdout, |_| {}).unwrap();
        w.pump(&b"err\n"[..], Stream::Stderr, |_| {}).unwrap();
        let lines = read_log(&path).unwrap();
        let texts: Vec<(&str, bool)> = lines.iter().map(|l| (l.line.as_str(), l.partial)).collect();
        assert_eq!(texts[..3], [("one", false), ("", false), ("two", false)]);
        assert_eq!((texts[3].0.len(), texts[3].1), (MAX_LINE, true));
        assert_eq!(texts[4], ("x".repeat(10).as_str(), false));
        assert_eq!(texts[5], ("last", true));
        assert_eq!(
            (lines[6].stream, lines[6].line.as_str()),
            (Stream::Stderr, "err")
        );
        assert!(
            lines[0].time.ends_with('Z') && lines[0].time.len() == 30,
            "{}",
            lines[0].time
        );
    }
}
