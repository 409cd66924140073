//! Writing a job's log: the shim reads the job's stdout and stderr in one loop (so lines keep
//! the order in which the kernel hands them over) and appends one record per line. The log is
//! capped: when the current file reaches half the cap it becomes [`ROTATED`] (replacing the
//! older one), so at most the cap is kept and the oldest lines go first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{LogLine, Stream, CURRENT, MAX_LINE, ROTATED};

/// Appends records to a job's log, rotating it at half of `max_bytes`.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    max_bytes: u64,
    file: Mutex<(File, u64)>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl LogWriter {
    /// Opens (creating, mode 0600) the log in the job directory `dir`; `max_bytes` caps both
    /// files together (at least 64 KiB is kept).
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        let file = open_append(&dir.join(CURRENT))?;
        let len = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(64 << 10),
            file: Mutex::new((file, len)),
        })
    }

    /// Appends one record.
    pub fn write(&self, stream: Stream, bytes: &[u8], partial: bool) -> io::Result<()> {
        let rec = LogLine {
            time: runtime_api::Timestamp::now(),
            stream,
            line: String::from_utf8_lossy(bytes).into_owned(),
            partial,
        };
        let mut json = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        json.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.1 > 0 && guard.1 + json.len() as u64 > self.max_bytes / 2 {
            // Readers following the old file find it under the rotated name and finish it.
            fs::rename(self.dir.join(CURRENT), self.dir.join(ROTATED))?;
            *guard = (open_append(&self.dir.join(CURRENT))?, 0);
        }
        // One write per record under the lock: records never interleave.
        guard.0.write_all(&json)?;
        guard.1 += json.len() as u64;
        Ok(())
    }

    /// Copies `input` into the log as `stream` until EOF, handing every chunk read to `tee`
    /// first.
    pub fn pump(
        &self,
        mut input: impl Read,
        stream: Stream,
        mut tee: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines = Lines::default();
        loop {
            match read_chunk(&mut input, &mut buf)? {
                Some(n) => {
                    tee(&buf[..n]);
                    lines.feed(self, stream, &buf[..n])?;
                }
                None => return lines.finish(self, stream),
            }
        }
    }

    /// Copies every input into the log until each has reached EOF, in one loop: whichever
    /// stream has output is read next, and when several have, the earlier one in `inputs`
    /// first. Every chunk goes to `tee` after it is logged; `tee` must not block.
    pub fn pump_all(
        &self,
        inputs: Vec<(File, Stream)>,
        mut tee: impl FnMut(Stream, &[u8]),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut open: Vec<(File, Stream, Lines)> = inputs
            .into_iter()
            .map(|(f, s)| (f, s, Lines::default()))
            .collect();
        while !open.is_empty() {
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd> = open
                    .iter()
                    .map(|(f, ..)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                    .collect();
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                fds.iter()
                    .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                    .collect()
            };
            let mut closed = Vec::new();
            for (i, is_ready) in ready.into_iter().enumerate() {
                if !is_ready {
                    continue;
                }
                let (file, stream, lines) = &mut open[i];
                match read_chunk(file, &mut buf)? {
                    Some(n) => {
                        lines.feed(self, *stream, &buf[..n])?;
                        tee(*stream, &buf[..n]);
                    }
                    None => {
                        lines.finish(self, *stream)?;
                        closed.push(i);
                    }
                }
            }
            for i in closed.into_iter().rev() {
                open.remove(i);
            }
        }
        Ok(())
    }
}

/// One read; `None` at EOF. A terminal's EIO (every writer of the other side closed) counts
/// as EOF.
fn read_chunk(input: &mut impl Read, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        return match input.read(buf) {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(None),
            Err(e) => Err(e),
        };
    }
}

/// The unfinished line of one stream.
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, log: &LogWriter, stream: Stream, mut rest: &[u8]) -> io::Result<()> {
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let take = end.unwrap_or(rest.len());
            self.line.extend_from_slice(&rest[..take]);
            while self.line.len() > MAX_LINE {
                log.write(stream, &self.line[..MAX_LINE], true)?;
                self.line.drain(..MAX_LINE);
            }
            match end {
                Some(i) => {
                    log.write(stream, &self.line, false)?;
                    self.line.clear();
                    rest = &rest[i + 1..];
                }
                None => rest = &[],
            }
        }
        Ok(())
    }

    fn finish(&mut self, log: &LogWriter, stream: Stream) -> io::Result<()> {
        if !self.line.is_empty() {
            log.write(stream, &self.line, true)?;
            self.line.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::read_log;

    #[test]
    fn lines_long_lines_and_unterminated_output() {
        let t = tempfile::tempdir().unwrap();
        let w = LogWriter::open(t.path(), 1 << 30).unwrap();
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("one\n\ntwo\n{long}\nlast");
        w.pump(input.as_bytes(), Stream::Stdout, |_| {}).unwrap();
        w.pump(&b"err\n"[..], Stream::Stderr, |_| {}).unwrap();
        let lines = read_log(t.path()).unwrap();
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
            lines[0].time.to_string().ends_with('Z') && lines[0].time.to_string().len() == 30,
            "{}",
            lines[0].time
        );
    }

    #[test]
    fn the_log_is_capped_and_keeps_the_newest_lines() {
        let t = tempfile::tempdir().unwrap();
        let cap = 256 << 10;
        let w = LogWriter::open(t.path(), cap).unwrap();
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        w.pump(text.as_bytes(), Stream::Stdout, |_| {}).unwrap();
        let size = |n| fs::metadata(t.path().join(n)).unwrap().len();
        assert!(size(CURRENT) + size(ROTATED) <= cap, "over the cap");
        let lines = read_log(t.path()).unwrap();
        assert_eq!(lines.last().unwrap().line, "line 19999");
        let first: usize = lines[0].line[5..].parse().unwrap();
        assert!(first > 0, "the oldest lines were rotated out");
        // What is kept is contiguous.
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l.line, format!("line {}", first + i));
        }
    }

    #[test]
    fn one_loop_logs_what_is_pending_in_input_order() {
        let t = tempfile::tempdir().unwrap();
        let w = LogWriter::open(t.path(), 1 << 30).unwrap();
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let (err_r, err_w) = nix::unistd::pipe().unwrap();
        // Both pipes hold output before the loop runs: stdout is taken first.
        File::from(out_w).write_all(b"ready\none\n").unwrap();
        File::from(err_w).write_all(b"done\n").unwrap();
        let mut teed = Vec::new();
        w.pump_all(
            vec![
                (File::from(out_r), Stream::Stdout),
                (File::from(err_r), Stream::Stderr),
            ],
            |s, d| teed.push((s, d.to_vec())),
        )
        .unwrap();
        let lines: Vec<String> = read_log(t.path())
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(lines, ["ready", "one", "done"]);
        assert_eq!(teed[0], (Stream::Stdout, b"ready\none\n".to_vec()));
    }
}
