//! What went wrong talking to the database, with its cause kept as the error's source (the logs and the
//! CLI print the whole chain), and which failures are worth retrying.

use thiserror::Error;

/// The cause of an unavailable database: a PostgreSQL error or the pool's.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong talking to the database.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached, the connection broke, or the server asked to retry (a lock or
    /// statement timeout, a serialization failure): retry later, nothing was written.
    #[error("database unavailable while {what}; nothing was written, retry when PostgreSQL answers")]
    Unavailable {
        what: &'static str,
        #[source]
        source: Cause,
    },
    /// PostgreSQL refused a statement.
    #[error("database error while {what}")]
    Query {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A value that cannot be stored, or stored data that cannot be read back.
    #[error("database error while {what}: {detail}")]
    Data {
        what: &'static str,
        detail: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("migration failed")]
    Migration(#[source] refinery::Error),
}

impl StoreError {
    /// Worth retrying (connection problems, serialisation conflicts).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// SQLSTATEs worth retrying: connection exceptions (class 08), the server shutting down or starting
/// (57P01-57P03), too many connections (53300), a lock or statement timeout (55P03, 57014), serialization
/// failure and deadlock (40001, 40P01), and a unique race on the one-current-run index (23505).
pub fn retryable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "55P03" | "57014" | "40001" | "40P01" | "23505"
        )
}

/// Maps a PostgreSQL error met while doing `what`: unavailable (retry) or refused.
pub(crate) fn q(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
        if e.is_closed() || e.as_db_error().is_none() || retryable_sqlstate(&code) {
            StoreError::Unavailable {
                what,
                source: Box::new(e),
            }
        } else {
            StoreError::Query { what, source: e }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_as_the_source() {
        let e = StoreError::Unavailable {
            what: "listing runs",
            source: "connection refused".into(),
        };
        assert!(e.is_retryable());
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("connection refused"));
        assert!(e.to_string().contains("listing runs"));
    }
}
