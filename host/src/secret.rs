//! Secrets the daemon keeps in its state directory (the API token, discoverd's platform key):
//! 64 hex digits from the kernel's random source, written once with mode 0600.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Reads the secret in `path`, generating it on first use.
pub fn load_or_create(path: &Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret: String = (0..4).map(|_| crate::host::random_id()).collect();
    write_file(path, &format!("{secret}\n"), 0o600)?;
    Ok(secret)
}

/// Writes `text` to `path` whole: a temporary file with `mode`, synced, renamed over it, so a
/// reader sees the old content or the new, never part of it.
pub fn write_file(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
