//! The attach protocol: the framed byte stream spoken on a job's `attach.sock` (served by the
//! shim) and, unchanged, on the host API's upgraded attach connections.
//!
//! Every frame is a 1-byte kind, a 4-byte big-endian payload length and the payload:
//!
//! ```text
//! 0 stdin        bytes for the job's stdin (or terminal)           client -> job
//! 1 stdout       bytes the job wrote to stdout (or its terminal)   job -> client
//! 2 stderr       bytes the job wrote to stderr                     job -> client
//! 3 exit         JSON ExitStatus; the last frame the job sends      job -> client
//! 4 resize       rows u16 BE, cols u16 BE: the terminal's size      client -> job
//! 5 close stdin  no payload: the client's input ended               client -> job
//! ```

use std::io::{self, Read, Write};

use crate::ExitStatus;

/// The protocol's name in an HTTP `Upgrade` header (the host's and the controller's attach).
pub const PROTOCOL: &str = "flynn-attach";

/// Largest payload accepted in one frame.
pub const MAX_PAYLOAD: usize = 1 << 20;
const HEADER: usize = 5;

/// One message of the attach protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Input for the job.
    Stdin(Vec<u8>),
    /// Output from the job's stdout (or terminal).
    Stdout(Vec<u8>),
    /// Output from the job's stderr.
    Stderr(Vec<u8>),
    /// The job ended.
    Exit(ExitStatus),
    /// The client's terminal has this size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// The client has no more input.
    CloseStdin,
}

/// A byte stream that is not valid attach protocol.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The kind byte is unknown.
    #[error("unknown attach frame kind {0}")]
    Kind(u8),
    /// The payload is over [`MAX_PAYLOAD`].
    #[error("attach frame of {0} bytes is over the 1 MiB limit")]
    TooLarge(usize),
    /// The payload does not fit its kind.
    #[error("malformed attach frame payload for kind {0}")]
    Payload(u8),
}

impl Frame {
    /// The frame as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            Frame::Stdin(d) => (0, d.clone()),
            Frame::Stdout(d) => (1, d.clone()),
            Frame::Stderr(d) => (2, d.clone()),
            Frame::Exit(s) => (3, serde_json::to_vec(s).expect("exit status serialises")),
            Frame::Resize { rows, cols } => (4, [rows.to_be_bytes(), cols.to_be_bytes()].concat()),
            Frame::CloseStdin => (5, Vec::new()),
        };
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Parses the first frame in `buf`: `Ok(None)` when more bytes are needed, otherwise the
    /// frame and how many bytes it used.
    pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        if buf.len() < HEADER {
            return Ok(None);
        }
        let kind = buf[0];
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if kind > 5 {
            return Err(FrameError::Kind(kind));
        }
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        if buf.len() < HEADER + len {
            return Ok(None);
        }
        let p = &buf[HEADER..HEADER + len];
        let frame = match kind {
            0 => Frame::Stdin(p.to_vec()),
            1 => Frame::Stdout(p.to_vec()),
            2 => Frame::Stderr(p.to_vec()),
            3 => Frame::Exit(serde_json::from_slice(p).map_err(|_| FrameError::Payload(kind))?),
            4 if len == 4 => Frame::Resize {
                rows: u16::from_be_bytes([p[0], p[1]]),
                cols: u16::from_be_bytes([p[2], p[3]]),
            },
            5 if len == 0 => Frame::CloseStdin,
            _ => return Err(FrameError::Payload(kind)),
        };
        Ok(Some((frame, HEADER + len)))
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream.
    pub fn read_from(r: &mut impl Read) -> io::Result<Option<Frame>> {
        let mut header = [0u8; HEADER];
        match r.read_exact(&mut header[..1]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        r.read_exact(&mut header[1..])?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                FrameError::TooLarge(len),
            ));
        }
        let mut buf = header.to_vec();
        buf.resize(HEADER + len, 0);
        r.read_exact(&mut buf[HEADER..])?;
        match Frame::parse(&buf) {
            Ok(Some((f, _))) => Ok(Some(f)),
            Ok(None) => Err(io::ErrorKind::UnexpectedEof.into()),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }

    /// Writes the frame.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_input_is_refused() {
        let frames = [
            Frame::Stdin(b"ls\n".to_vec()),
            Frame::Stdout(vec![0, 1, 2]),
            Frame::Stderr(Vec::new()),
            Frame::Exit(ExitStatus {
                code: Some(3),
                signal: None,
                oom_killed: false,
            }),
            Frame::Resize { rows: 24, cols: 80 },
            Frame::CloseStdin,
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            f.write_to(&mut bytes).unwrap();
        }
        let mut r = &bytes[..];
        for f in &frames {
            assert_eq!(Frame::read_from(&mut r).unwrap().as_ref(), Some(f));
        }
        assert_eq!(Frame::read_from(&mut r).unwrap(), None);
        assert_eq!(Frame::parse(&bytes[..3]).unwrap(), None);
        assert!(matches!(
            Frame::parse(&[9, 0, 0, 0, 0]),
            Err(FrameError::Kind(9))
        ));
        assert!(matches!(
            Frame::parse(&[0, 0xff, 0, 0, 0]),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            Frame::parse(&[4, 0, 0, 0, 1, 7]),
            Err(FrameError::Payload(4))
        ));
    }
}
