//! The shim's side of attach: clients connected to the job's `attach.sock` receive its output
//! as it is produced and send it input and terminal sizes (see [`crate::attach`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::attach::Frame;
use crate::log::Stream;
use crate::shim::ExitStatus;

/// Output a newly attached client of a terminal job receives first, so that it sees the
/// current prompt.
const REPLAY: usize = 4096;
/// Output of a job with stdin kept for its first client (a job started by `run -i` prints
/// before the client has attached).
const EARLY: usize = 64 * 1024;
/// Sends all of `data` to `client` without waiting: a client whose socket buffer is full has
/// fallen behind the job's output and is dropped (the output is in the log), so that reading
/// the job's output never waits on a client.
fn send_now(client: &UnixStream, mut data: &[u8]) -> bool {
    use nix::sys::socket::{send, MsgFlags};
    while !data.is_empty() {
        match send(
            client.as_raw_fd(),
            data,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(_) => {
                let _ = client.shutdown(std::net::Shutdown::Both);
                return false;
            }
        }
    }
    true
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The attached clients of one job and where their input goes.
#[derive(Debug)]
pub(crate) struct Hub {
    clients: Mutex<Vec<UnixStream>>,
    stdin: Mutex<Option<File>>,
    terminal: Option<File>,
    replay: Mutex<VecDeque<u8>>,
    /// Frames for the first client, until it comes (jobs with stdin only).
    early: Mutex<Option<(Vec<u8>, bool)>>,
    exited: Mutex<Option<ExitStatus>>,
}

impl Hub {
    /// A hub writing input to `stdin` (a pipe, or the terminal's master side when `terminal`
    /// is true), or discarding it when there is none.
    pub(crate) fn new(stdin: Option<File>, terminal: bool) -> Arc<Self> {
        let term = match (&stdin, terminal) {
            (Some(f), true) => f.try_clone().ok(),
            _ => None,
        };
        let early = (stdin.is_some() && !terminal).then(|| (Vec::new(), false));
        Arc::new(Self {
            clients: Mutex::new(Vec::new()),
            stdin: Mutex::new(stdin),
            terminal: term,
            replay: Mutex::new(VecDeque::new()),
            early: Mutex::new(early),
            exited: Mutex::new(None),
        })
    }

    /// Sends output to every client, dropping those that fail or stall.
    pub(crate) fn output(&self, stream: Stream, data: &[u8]) {
        if self.terminal.is_some() {
            let mut r = lock(&self.replay);
            r.extend(data);
            let over = r.len().saturating_sub(REPLAY);
            r.drain(..over);
        }
        let frame = match stream {
            Stream::Stdout => Frame::Stdout(data.to_vec()),
            Stream::Stderr => Frame::Stderr(data.to_vec()),
        }
        .encode();
        let mut clients = lock(&self.clients);
        if let Some((buf, full)) = lock(&self.early).as_mut() {
            if buf.len() + frame.len() <= EARLY {
                buf.extend_from_slice(&frame);
            } else {
                *full = true;
            }
        }
        clients.retain(|c| send_now(c, &frame));
    }

    /// Tells every client how the job ended and disconnects them.
    pub(crate) fn exit(&self, status: ExitStatus) {
        *lock(&self.exited) = Some(status);
        let frame = Frame::Exit(status).encode();
        for c in lock(&self.clients).drain(..) {
            let _ = send_now(&c, &frame);
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Accepts clients on `listener` for as long as the shim runs.
    pub(crate) fn serve(self: Arc<Self>, listener: UnixListener) {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let hub = self.clone();
            std::thread::spawn(move || hub.client(conn));
        }
    }

    fn client(&self, mut conn: UnixStream) {
        let Ok(writer) = conn.try_clone() else { return };
        {
            // Registered under the clients lock, so no output is sent twice or skipped.
            let mut clients = lock(&self.clients);
            let first = match lock(&self.early).take() {
                Some((frames, full)) => {
                    if full {
                        tracing::warn!("output before the first attach was over 64 KiB; the rest is only in the log");
                    }
                    frames
                }
                None => Vec::new(),
            };
            let replay: Vec<u8> = lock(&self.replay).iter().copied().collect();
            let replay = if replay.is_empty() {
                Vec::new()
            } else {
                Frame::Stdout(replay).encode()
            };
            if !send_now(&conn, &first) || !send_now(&conn, &replay) {
                return;
            }
            if let Some(status) = *lock(&self.exited) {
                let _ = send_now(&conn, &Frame::Exit(status).encode());
                return;
            }
            clients.push(writer);
        }
        while let Ok(Some(frame)) = Frame::read_from(&mut conn) {
            match frame {
                Frame::Stdin(data) => {
                    if let Some(f) = lock(&self.stdin).as_mut() {
                        let _ = f.write_all(&data);
                    }
                }
                Frame::Resize { rows, cols } => self.resize(rows, cols),
                Frame::CloseStdin if self.terminal.is_none() => *lock(&self.stdin) = None,
                _ => {}
            }
        }
        // Writes to the other half now fail, which drops it from the clients.
        let _ = conn.shutdown(std::net::Shutdown::Both);
    }

    fn resize(&self, rows: u16, cols: u16) {
        let Some(term) = &self.terminal else { return };
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: the fd is the open master side of a terminal and `size` a valid winsize.
        unsafe { libc::ioctl(term.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}
