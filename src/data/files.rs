//! File helpers shared by the data module: errors naming a file, JSON reading, and
//! atomic writes (temporary file + rename) for generated data and caches.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// An error about `path`, as `path: msg`.
pub(crate) fn file_error(path: &Path, msg: impl fmt::Display) -> Error {
    Error::invalid(format!("{}: {msg}", path.display()))
}

/// An I/O error naming `path`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a unique temporary file beside `path` and renames it over `path`,
/// so readers never see a half-written file; the temporary file is removed on failure.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| file_error(path, "the path does not name a file"))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        // Best effort: the temporary file may not exist.
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(path)(e));
    }
    Ok(())
}

/// Writes `value` as pretty JSON (with a final newline), atomically.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| file_error(path, format!("cannot encode JSON: {e}")))?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}
