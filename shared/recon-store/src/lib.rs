//! # recon-store
//!
//! The only crate with SQL. A [`Store`] wraps a deadpool-postgres pool and offers what the use cases need:
//! apply the migrations in `migrations/` ([`migrate`](Store::migrate), refinery, forward-only), load the pending
//! items to carry forward, record a run with all its discrepancies in **one transaction** (bulk binary
//! `COPY`), idempotently per execution + processor + date, superseding the previous run of the same date
//! and processor ([`write`]), and read runs back for `recon runs` / `recon show` and the report's trend chart
//! ([`read`]). Errors keep their cause as their source ([`StoreError`]).

mod actions;
mod carry;
mod config;
mod error;
pub mod items;
mod migrate;
pub mod read;
pub mod write;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use actions::{Acted, BatchOutcome, ItemCommand, ItemEvent, ItemFilter, Refusal};
pub use carry::CarriedItem;
pub use config::DbConfig;
pub use error::{retryable_sqlstate, Cause, StoreError};
pub use items::{ItemDigest, ItemRow};
pub use read::{DiscrepancyRow, RunRow, RunState};
pub use write::{NewRun, Recorded, Unattributed};

/// The database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

/// How long connecting (the socket, then the server's answer to the startup) may take, and how long a
/// caller waits for a pooled connection: well under a Lambda's timeout, so that a database that accepts but
/// never answers is a `Retryable` error, not an invocation that hangs until Lambda kills it.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The server-side limit of one statement (the longest is a run's binary COPY: seconds for a million rows).
pub const STATEMENT_TIMEOUT: &str = "300s";

impl Store {
    /// Builds the pool (no connection is made yet). Unless the URL says otherwise: connections time out
    /// after [`CONNECT_TIMEOUT`], statements after [`STATEMENT_TIMEOUT`].
    pub fn new(config: &DbConfig) -> Result<Self, StoreError> {
        let mut pg = config.pg.clone();
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        if pg.get_options().is_none() {
            pg.options(format!("-c statement_timeout={STATEMENT_TIMEOUT}"));
        }
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(4)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build the connection pool: {e}")))?;
        Ok(Store { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable {
            what: "taking a connection from the pool",
            source: Box::new(e),
        })
    }
}
