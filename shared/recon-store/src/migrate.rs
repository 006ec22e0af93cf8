//! The schema: forward-only migrations from `migrations/` (refinery), serialised by an advisory lock, and
//! the database created on a fresh local server.

use tokio_postgres::NoTls;

use crate::error::q;
use crate::{DbConfig, Store, StoreError};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

impl Store {
    /// Creates the configured database when the server answers but the database does not exist yet
    /// (local convenience for `recon run` on a fresh machine). Connects to the `postgres` database to do so.
    pub async fn create_database_if_missing(config: &DbConfig) -> Result<bool, StoreError> {
        let Some(name) = config.pg.get_dbname().map(str::to_string) else {
            return Ok(false);
        };
        match config.pg.connect(NoTls).await {
            Ok(_) => return Ok(false),
            Err(e) if e.code().map(|c| c.code()) == Some("3D000") => {}
            Err(e) => return Err(q("connecting")(e)),
        }
        let mut admin = config.pg.clone();
        admin.dbname("postgres");
        let (client, conn) = admin
            .connect(NoTls)
            .await
            .map_err(q("connecting to the postgres database"))?;
        let task = tokio::spawn(conn);
        let ident = name.replace('"', "\"\"");
        let created = client
            .batch_execute(&format!("CREATE DATABASE \"{ident}\""))
            .await;
        drop(client);
        let _ = task.await;
        match created {
            Ok(()) => Ok(true),
            Err(e) if e.code().map(|c| c.code()) == Some("42P04") => Ok(false),
            Err(e) => Err(q("creating the database")(e)),
        }
    }

    /// Applies pending migrations (serialised by an advisory lock, so concurrent starts are safe).
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut obj = self.client().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        client
            .execute("SELECT pg_advisory_lock(727274)", &[])
            .await
            .map_err(q("locking for migrations"))?;
        let report = embedded::migrations::runner().run_async(client).await;
        client
            .execute("SELECT pg_advisory_unlock(727274)", &[])
            .await
            .map_err(q("unlocking after migrations"))?;
        let report = report.map_err(StoreError::Migration)?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }
}
