//! Reading a job's log in bounded memory: the last N records by reading backwards from the end,
//! everything in chunks, and new records as they are written, across rotations (a follower
//! finishes the file it was reading under its rotated name, then goes on in the new one).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{LogLine, CURRENT, ROTATED};

/// How much is read at a time.
const CHUNK: usize = 64 << 10;

/// Where a reader is in a job's log: a file (by inode) and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogCursor {
    inode: u64,
    offset: u64,
}

/// The log files of one job directory.
#[derive(Debug, Clone)]
pub struct LogReader {
    dir: PathBuf,
}

fn parse(bytes: &[u8]) -> Option<LogLine> {
    serde_json::from_slice(bytes).ok()
}

fn open(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The offset just after the last whole record of a file of `len` bytes.
fn whole_end(f: &mut File, len: u64) -> io::Result<u64> {
    let start = len.saturating_sub(CHUNK as u64);
    let mut buf = vec![0u8; (len - start) as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut buf)?;
    Ok(buf
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(start, |i| start + i as u64 + 1))
}

impl LogReader {
    /// The log of the job directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The older file first, then the current one.
    fn files(&self) -> [PathBuf; 2] {
        [self.dir.join(ROTATED), self.dir.join(CURRENT)]
    }

    /// A cursor at the start of the whole log (the older file, when there is one).
    pub fn start(&self) -> io::Result<LogCursor> {
        for p in self.files() {
            if let Ok(m) = fs::metadata(&p) {
                return Ok(LogCursor {
                    inode: m.ino(),
                    offset: 0,
                });
            }
        }
        Ok(LogCursor::default())
    }

    /// A cursor at the first of the last `n` records that `keep` accepts (at the start of
    /// the log when there are fewer), found by reading backwards from the end: the cost
    /// depends on how far back the records are, not on the log's size, and nothing but one
    /// chunk is held in memory.
    pub fn seek_last(&self, n: usize, keep: impl Fn(&LogLine) -> bool) -> io::Result<LogCursor> {
        let mut found = 0;
        let mut at = None;
        for path in self.files().into_iter().rev() {
            let Some(mut f) = open(&path)? else { continue };
            let meta = f.metadata()?;
            let inode = meta.ino();
            // Only whole records: the shim may be half-way through the last one.
            let mut pos = whole_end(&mut f, meta.len())?;
            if at.is_none() {
                at = Some(LogCursor { inode, offset: pos });
            }
            // The start of a record cut by the chunk boundary, read with the chunk before.
            let mut carry: Vec<u8> = Vec::new();
            while pos > 0 && found < n {
                let start = pos.saturating_sub(CHUNK as u64);
                let mut buf = vec![0u8; (pos - start) as usize];
                f.seek(SeekFrom::Start(start))?;
                f.read_exact(&mut buf)?;
                buf.extend_from_slice(&carry);
                pos = start;
                // (offset in buf, record) for each whole record, the cut first one aside.
                let mut pieces: Vec<(usize, &[u8])> = Vec::new();
                let mut begin = 0;
                for (i, &b) in buf.iter().enumerate() {
                    if b == b'\n' {
                        pieces.push((begin, &buf[begin..i]));
                        begin = i + 1;
                    }
                }
                let cut = pos > 0 && !pieces.is_empty();
                carry = if cut {
                    pieces.remove(0).1.to_vec()
                } else {
                    Vec::new()
                };
                for (off, p) in pieces.into_iter().rev() {
                    if parse(p).is_some_and(|l| keep(&l)) {
                        found += 1;
                        at = Some(LogCursor {
                            inode,
                            offset: start + off as u64,
                        });
                        if found == n {
                            break;
                        }
                    }
                }
            }
            if found >= n {
                break;
            }
        }
        if found < n {
            return self.start();
        }
        Ok(at.unwrap_or_default())
    }

    /// The last `n` records that `keep` accepts, oldest first, and a cursor just after them.
    pub fn tail(
        &self,
        n: usize,
        keep: impl Fn(&LogLine) -> bool,
    ) -> io::Result<(Vec<LogLine>, LogCursor)> {
        let mut cursor = self.seek_last(n, &keep)?;
        let mut out = Vec::new();
        loop {
            let before = cursor;
            let batch = self.next(&mut cursor)?;
            if batch.is_empty() && cursor == before {
                return Ok((out, cursor));
            }
            out.extend(batch.into_iter().filter(|l| keep(l)));
        }
    }

    /// Reads whole records after `cursor`, at most about one chunk of them, and moves the
    /// cursor past them. Returns no records when nothing new is written. When the file the
    /// cursor is in has been rotated and is read to its end, the cursor moves on to the
    /// current file.
    pub fn next(&self, cursor: &mut LogCursor) -> io::Result<Vec<LogLine>> {
        let [rotated, current] = self.files();
        let cur_meta = fs::metadata(&current).ok();
        let rot_meta = fs::metadata(&rotated).ok();
        let path = if cursor.inode == 0 {
            match &cur_meta {
                Some(m) => {
                    cursor.inode = m.ino();
                    current.clone()
                }
                None => return Ok(Vec::new()),
            }
        } else if cur_meta.as_ref().is_some_and(|m| m.ino() == cursor.inode) {
            current.clone()
        } else if rot_meta.as_ref().is_some_and(|m| m.ino() == cursor.inode) {
            rotated.clone()
        } else {
            // Rotated twice since the last read: what the cursor pointed at is gone.
            *cursor = self.start()?;
            return self.next(cursor);
        };
        let Some(mut f) = open(&path)? else {
            return Ok(Vec::new());
        };
        f.seek(SeekFrom::Start(cursor.offset))?;
        let mut buf = Vec::with_capacity(CHUNK);
        (&mut f).take(CHUNK as u64).read_to_end(&mut buf)?;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            if buf.len() == CHUNK {
                // One record longer than a chunk cannot be: records are at most a few times
                // MAX_LINE; skip the damage rather than stall.
                cursor.offset += buf.len() as u64;
                return Ok(Vec::new());
            }
            if path == rotated {
                // The rotated file is finished (only the shim writes, and never to it).
                if let Some(m) = cur_meta {
                    *cursor = LogCursor {
                        inode: m.ino(),
                        offset: 0,
                    };
                    return self.next(cursor);
                }
            }
            return Ok(Vec::new());
        };
        cursor.offset += end as u64 + 1;
        Ok(buf[..end]
            .split(|&b| b == b'\n')
            .filter_map(parse)
            .collect())
    }
}

/// Reads every record of the log in job directory `dir`; a torn last record (a crash
/// mid-write) is skipped.
pub fn read_log(dir: &Path) -> io::Result<Vec<LogLine>> {
    let reader = LogReader::new(dir);
    let mut cursor = reader.start()?;
    let mut out = Vec::new();
    loop {
        let before = cursor;
        let batch = reader.next(&mut cursor)?;
        if batch.is_empty() && cursor == before {
            return Ok(out);
        }
        out.extend(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogWriter, Stream};

    fn write(dir: &Path, cap: u64, lines: std::ops::Range<usize>) -> LogWriter {
        let w = LogWriter::open(dir, cap).unwrap();
        for i in lines {
            w.write(Stream::Stdout, format!("line {i}").as_bytes(), false)
                .unwrap();
        }
        w
    }

    #[test]
    fn tail_reads_the_last_lines_across_both_files() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), 128 << 10, 0..3000);
        let all = read_log(t.path()).unwrap();
        let r = LogReader::new(t.path());
        for n in [0, 1, 3, 700, all.len(), all.len() + 5] {
            let (got, _) = r.tail(n, |_| true).unwrap();
            assert_eq!(got, all[all.len().saturating_sub(n)..], "tail {n}");
        }
        let (odd, _) = r.tail(2, |l| l.line.ends_with('1')).unwrap();
        assert_eq!(
            odd.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["line 2981", "line 2991"]
        );
    }

    /// Everything after `cursor`, as a follower reads it.
    fn drain(r: &LogReader, cursor: &mut LogCursor) -> Vec<LogLine> {
        let mut out = Vec::new();
        loop {
            let b = r.next(cursor).unwrap();
            if b.is_empty() {
                return out;
            }
            out.extend(b);
        }
    }

    #[test]
    fn a_follower_sees_every_line_across_a_rotation() {
        let t = tempfile::tempdir().unwrap();
        let w = write(t.path(), 64 << 10, 0..10);
        let r = LogReader::new(t.path());
        let (got, mut cursor) = r.tail(3, |_| true).unwrap();
        assert_eq!(got.last().unwrap().line, "line 9");
        for i in 10..1500 {
            w.write(Stream::Stdout, format!("line {i}").as_bytes(), false)
                .unwrap();
            if i % 100 == 0 {
                // Read now and then, so that the follower is behind when the file rotates.
                let seen = drain(&r, &mut cursor);
                assert_eq!(seen.last().unwrap().line, format!("line {i}"));
            }
        }
        let rest = drain(&r, &mut cursor);
        let first: usize = rest[0].line[5..].parse().unwrap();
        for (k, l) in rest.iter().enumerate() {
            assert_eq!(l.line, format!("line {}", first + k));
        }
        assert_eq!(rest.last().unwrap().line, "line 1499");
    }

    #[test]
    fn a_torn_last_record_is_not_read() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), 1 << 20, 0..2);
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(t.path().join(CURRENT))
            .unwrap()
            .write_all(b"{\"time\":\"2026")
            .unwrap();
        assert_eq!(read_log(t.path()).unwrap().len(), 2);
        let (tail, _) = LogReader::new(t.path()).tail(5, |_| true).unwrap();
        assert_eq!(tail.len(), 2);
    }
}
