//! An interactive session on the attach protocol: local input to the job, its output to the
//! local terminal (raw mode for terminal jobs), window size changes forwarded, the job's exit
//! status as a shell's exit code.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use nix::sys::termios::{self, SetArg, Termios};
use runtime_api::attach::{Frame, FrameError};
use runtime_api::ExitStatus;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Why a session ended without the job's exit status.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The stream is not the attach protocol.
    #[error("reading from the job: {0}")]
    Frame(#[from] FrameError),
    /// Reading the connection or writing the terminal failed.
    #[error("attach session: {0}")]
    Io(#[from] std::io::Error),
    /// The connection closed before an exit frame.
    #[error("the connection to the job ended before the job did")]
    Ended,
}

/// Restores the terminal's settings when dropped.
struct RawMode(Termios);

impl RawMode {
    fn enable() -> Option<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

/// The local terminal's size as a resize frame (none when stdout is no terminal).
pub fn window_size() -> Option<Frame> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize we pass; fd 1 is our stdout.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some(Frame::Resize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// The exit code a shell would give for this status.
pub fn exit_code(s: &ExitStatus) -> i32 {
    match (s.code, s.signal) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 125,
    }
}

/// Runs a session on `io` until the job exits; returns its exit code. With `tty`, the local
/// terminal (if stdin is one) is in raw mode meanwhile and its size follows; with `stdin`,
/// local input goes to the job, and its end closes the job's stdin.
pub async fn session<IO>(io: IO, tty: bool, stdin: bool) -> Result<i32, SessionError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let _raw = (tty && std::io::stdin().is_terminal())
        .then(RawMode::enable)
        .flatten();
    let (tx, mut rx) = mpsc::channel::<Frame>(64);
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f.encode()).await.is_err() {
                return;
            }
        }
    });
    if tty {
        if let Some(f) = window_size() {
            let _ = tx.send(f).await;
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            let kind = tokio::signal::unix::SignalKind::window_change();
            let Ok(mut winch) = tokio::signal::unix::signal(kind) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some(f) = window_size() {
                    if tx.send(f).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    if stdin {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Frame::CloseStdin).await;
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Frame::Stdin(buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some((frame, used)) = Frame::parse(&buf)? {
            buf.drain(..used);
            match frame {
                Frame::Stdout(d) => {
                    out.write_all(&d).await?;
                    out.flush().await?;
                }
                Frame::Stderr(d) => {
                    err.write_all(&d).await?;
                    err.flush().await?;
                }
                Frame::Exit(status) => return Ok(exit_code(&status)),
                _ => {}
            }
        }
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return Err(SessionError::Ended);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
