use std::path::PathBuf;

/// Why a SQLite store could not be opened. The message names the file and
/// says what to change, since it reaches whoever put the link.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The link sets no `path` and the host gave the provider no data
    /// directory to put a default file in.
    #[error(
        "the link from `{source_id}` (link `{link_name}`) names no database file and this \
         provider has no data directory for a default one; set the link's target config key \
         `path` to a SQLite file"
    )]
    NoPath {
        /// The linked component.
        source_id: String,
        /// The link's name.
        link_name: String,
    },
    /// The file or its directory cannot be created or written.
    #[error(
        "cannot use {path} as a SQLite store: {source}; set the link's target config key \
         `path` to a file in a directory this provider can write"
    )]
    Unwritable {
        /// The database file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// SQLite refused the file (not a database, locked, corrupt, ...).
    #[error(
        "cannot open the SQLite store {path}: {source}; check that it is a SQLite database \
         this provider can write, or point the link's target config key `path` elsewhere"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}
