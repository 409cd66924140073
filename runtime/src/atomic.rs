//! Atomic file writes: a reader sees the old file or the new one, never half of one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `dir/name` by writing `dir/.name.tmp` (mode 0600) and renaming it over the file.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?
        .write_all(data)?;
    fs::rename(tmp, dir.join(name))
}
