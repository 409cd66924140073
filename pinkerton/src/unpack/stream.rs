//! The decompressing side of an unpack: a thread that inflates and hashes the layer stream and
//! hands fixed-size chunks to the extracting thread.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender};

use crate::digest::{Digest, Hasher};
use crate::manifest::Compression;

/// Size of the chunks passed from the decompressing thread to the writing thread.
pub(super) const CHUNK: usize = 256 * 1024;

/// Decompresses `input` into chunks sent to `tx`, hashing them; returns the digest and length
/// of the whole uncompressed stream.
pub(super) fn decompress(
    input: &mut (dyn Read + Send),
    compression: Compression,
    limit: u64,
    tx: SyncSender<io::Result<Vec<u8>>>,
) -> io::Result<(Digest, u64)> {
    let mut decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(CHUNK, input),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
    };
    let mut hasher = Hasher::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
        }
        if filled == 0 {
            let len = hasher.len();
            return Ok((hasher.finish(), len));
        }
        chunk.truncate(filled);
        hasher.update(&chunk);
        if hasher.len() > limit {
            let e = || {
                io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    format!("stream exceeds {limit} bytes"),
                )
            };
            let _ = tx.send(Err(e()));
            return Err(e());
        }
        if tx.send(Ok(chunk)).is_err() {
            // Extraction stopped (it failed); its error is the one reported.
            return Err(io::Error::other("extraction stopped"));
        }
    }
}

/// Reads the chunks the decompressing thread sends.
pub(super) struct ChunkReader {
    pub(super) rx: Receiver<io::Result<Vec<u8>>>,
    pub(super) current: Vec<u8>,
    pub(super) pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
