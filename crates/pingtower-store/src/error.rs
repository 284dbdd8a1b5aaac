use thiserror::Error;

/// Errors of the store layer.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The row does not exist, or belongs to another tenant.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write (the message names what clashed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The change would leave a tenant that had an owner without one.
    #[error("a tenant keeps at least one owner")]
    LastOwner,
    /// Optimistic concurrency: the row changed since the caller read it.
    #[error("version mismatch: the current version is {current}")]
    VersionMismatch { current: i64 },
    /// The store was opened with settings that cannot work.
    #[error("{0}")]
    Config(String),
    /// A caller's argument the store cannot use (a malformed cursor).
    #[error("{0}")]
    InvalidInput(String),
    /// A stored value could not be decoded (corruption or a newer schema).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
                db.constraint()
                    .map_or_else(|| db.message().to_owned(), str::to_owned),
            ),
            _ => StoreError::Database(e),
        }
    }
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}
