//! The end of a chunked body (RFC 9112 §7.1), found as its bytes pass through unchanged:
//! chunk sizes, extensions and trailers are read only to know where the message stops.

/// A chunked body that cannot be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// A chunk-size line that is not hexadecimal digits (and an optional extension).
    #[error("malformed chunk size line")]
    Size,
    /// A chunk size beyond 2^62 bytes.
    #[error("chunk size too large")]
    Overflow,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    Delimiter,
    /// A size line, extension or trailer section longer than the router reads.
    #[error("chunk size line or trailers too long")]
    LineTooLong,
}

/// The longest chunk-size line (with extensions) or trailer section accepted.
const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hexadecimal size; `digits` seen so far.
    Size { size: u64, digits: u32 },
    /// After the size: an extension or whitespace until the line's end.
    Extension { size: u64 },
    /// The size line's CR was read; its LF comes next.
    SizeLf { size: u64 },
    /// Chunk data, this many bytes left.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// The empty line's CR was read; its LF ends the body.
    EndLf,
    /// The body has ended.
    Done,
}

/// Follows a chunked body through the bytes that carry it.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// Bytes of the current size line or trailer section so far.
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunked {
    /// At the start of a chunked body.
    pub fn new() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
        }
    }

    /// True once the last chunk and the trailers have passed.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// [`Chunked::decode`] without the data (what the tests follow).
    #[cfg(test)]
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, ChunkedError> {
        self.decode(bytes, |_| {})
    }

    /// Reads `bytes`, the body's next bytes; returns how many belong to it (fewer than all
    /// only once it has ended: the rest is what follows the message), calling `data` with
    /// each range of `bytes` that is chunk data (the body with its framing taken off), in
    /// order.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Data(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    data(i..i + take as usize);
                    i += take as usize;
                    let left = left - take;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Size { size, digits } => {
                    self.count_line()?;
                    match (b as char).to_digit(16) {
                        Some(d) => {
                            if digits >= 15 {
                                return Err(ChunkedError::Overflow);
                            }
                            State::Size {
                                size: size << 4 | d as u64,
                                digits: digits + 1,
                            }
                        }
                        None if digits == 0 => return Err(ChunkedError::Size),
                        None => match b {
                            b'\r' => State::SizeLf { size },
                            b';' | b' ' | b'\t' => State::Extension { size },
                            _ => return Err(ChunkedError::Size),
                        },
                    }
                }
                State::Extension { size } => {
                    self.count_line()?;
                    match b {
                        b'\r' => State::SizeLf { size },
                        b'\n' => return Err(ChunkedError::Size),
                        _ => State::Extension { size },
                    }
                }
                State::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(ChunkedError::Size);
                    }
                    self.line = 0;
                    if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(size)
                    }
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => {
                    self.line = 0;
                    State::Size { size: 0, digits: 0 }
                }
                State::DataCr | State::DataLf => return Err(ChunkedError::Delimiter),
                State::TrailerStart => {
                    self.count_line()?;
                    match b {
                        b'\r' => State::EndLf,
                        b'\n' => return Err(ChunkedError::Delimiter),
                        _ => State::Trailer,
                    }
                }
                State::Trailer => {
                    self.count_line()?;
                    match b {
                        b'\n' => State::TrailerStart,
                        _ => State::Trailer,
                    }
                }
                State::EndLf if b == b'\n' => State::Done,
                State::EndLf => return Err(ChunkedError::Delimiter),
            };
            i += 1;
        }
        Ok(i)
    }

    fn count_line(&mut self) -> Result<(), ChunkedError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` one split at a time at every position; returns the bytes consumed.
    fn feed_split(body: &[u8]) -> Result<(usize, bool), ChunkedError> {
        let mut whole = Chunked::new();
        let n = whole.feed(body)?;
        for at in 0..body.len() {
            let mut c = Chunked::new();
            let a = c.feed(&body[..at])?;
            let b = if c.done() { 0 } else { c.feed(&body[a..])? };
            assert_eq!(a + b, n, "split at {at}");
            assert_eq!(c.done(), whole.done(), "split at {at}");
        }
        Ok((n, whole.done()))
    }

    #[test]
    fn finds_the_end_of_chunks_extensions_and_trailers_at_any_split() {
        let body = b"5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        assert_eq!(feed_split(body), Ok((body.len() - 4, true)));
        let body = b"0\r\n\r\n";
        assert_eq!(feed_split(body), Ok((5, true)));
    }

    #[test]
    fn decodes_the_data_at_any_split() {
        let body = b"5;ext\r\nhello\r\n7\r\n, world\r\n0\r\nT: 1\r\n\r\n";
        for at in 0..=body.len() {
            let (mut c, mut out) = (Chunked::new(), Vec::new());
            for part in [&body[..at], &body[at..]] {
                c.decode(part, |r| out.extend_from_slice(&part[r])).unwrap();
            }
            assert_eq!(out, b"hello, world", "split at {at}");
            assert!(c.done());
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let mut c = Chunked::new();
        assert_eq!(c.feed(b"5\r\nhel"), Ok(6));
        assert!(!c.done());
        assert_eq!(c.feed(b"lo\r\n0\r\n"), Ok(7));
        assert!(!c.done());
        assert_eq!(c.feed(b"\r\n"), Ok(2));
        assert!(c.done());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for (body, err) in [
            (&b"x\r\n"[..], ChunkedError::Size),
            (b"\r\n", ChunkedError::Size),
            (b"5\nhello", ChunkedError::Size),
            (b"5\r\nhelloXX", ChunkedError::Delimiter),
            (b"1000000000000000\r\n", ChunkedError::Overflow),
            (b"0\r\n\n", ChunkedError::Delimiter),
        ] {
            assert_eq!(Chunked::new().feed(body), Err(err), "{body:?}");
        }
        let long = [b'0'; 1]
            .iter()
            .chain([b';'; MAX_LINE].iter())
            .copied()
            .collect::<Vec<u8>>();
        assert_eq!(Chunked::new().feed(&long), Err(ChunkedError::LineTooLong));
    }
}
