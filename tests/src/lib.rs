//! Test helpers: a fresh PostgreSQL database per test, dropped when the test ends.
//!
//! The server is the one `DATABASE_URL` points at (default `postgres://postgres@127.0.0.1:5432/recon`);
//! `make test` starts one when none answers.

#![allow(clippy::expect_used, clippy::panic)]

use std::str::FromStr;

/// A database created for one test; dropped (with `FORCE`) on drop.
pub struct TestDb {
    pub url: String,
    name: String,
    admin: tokio_postgres::Config,
}

fn base_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/recon".into())
}

fn admin_config() -> tokio_postgres::Config {
    let mut c =
        tokio_postgres::Config::from_str(&base_url()).expect("DATABASE_URL is a valid PostgreSQL URL");
    c.dbname("postgres");
    c
}

async fn exec(admin: &tokio_postgres::Config, sql: &str) {
    let (client, conn) = admin.connect(tokio_postgres::NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL must answer at DATABASE_URL ({}) - run the tests through `make test`: {e}",
            base_url()
        )
    });
    let task = tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}

impl TestDb {
    /// Creates `recon_test_<random>` and returns its URL.
    pub async fn new() -> TestDb {
        let name = format!("recon_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_config();
        exec(&admin, &format!("CREATE DATABASE {name}")).await;
        let base = base_url();
        let prefix = base.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or(base);
        TestDb {
            url: format!("{prefix}/{name}"),
            name,
            admin,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // a runtime of its own: Drop may run inside or outside one
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(exec(&admin, &sql));
            }
        })
        .join();
    }
}
