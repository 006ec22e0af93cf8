//! # recon-store
//!
//! The only crate with SQL. A [`Store`] wraps a deadpool-postgres pool and offers what the use cases need:
//! apply the migrations in `migrations/` ([`migrate`](Store::migrate), refinery, forward-only), load the pending
//! items to carry forward, record a run with all its discrepancies in **one transaction** (bulk binary
//! `COPY`), idempotently per execution + processor + date, superseding the previous run of the same date
//! and processor ([`write`]), and read runs back for `recon runs` / `recon show` and the report's trend chart
//! ([`read`]). Errors keep their cause as their source ([`StoreError`]).

mod carry;
mod config;
mod error;
mod migrate;
pub mod read;
pub mod write;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use carry::CarriedItem;
pub use config::DbConfig;
pub use error::{retryable_sqlstate, Cause, StoreError};
pub use read::{DiscrepancyRow, RunRow, RunState};
pub use write::{NewRun, Recorded, Unattributed};

/// The database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Builds the pool (no connection is made yet).
    pub fn new(config: &DbConfig) -> Result<Self, StoreError> {
        let mgr = Manager::from_config(
            config.pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(4)
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
