//! File helpers shared by the data module: errors naming a file, JSON reading, and
//! atomic writes (temporary file + rename) for generated data and caches.

use std::fmt;
use std::path::Path;

pub(crate) use crate::atomic_file::write_atomically;
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

/// Writes `value` as pretty JSON (with a final newline), atomically.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| file_error(path, format!("cannot encode JSON: {e}")))?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

/// Reads JSON from `path`; unreadable or malformed files are errors naming `path`.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|e| file_error(path, format!("invalid JSON: {e}")))
}
