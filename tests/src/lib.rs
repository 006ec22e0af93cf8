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

/// A TCP proxy in front of PostgreSQL that cuts the connection (both ways) as soon as the client sends
/// `trigger` (for example `FROM STDIN`: the start of a COPY), once; later connections pass through.
pub struct CutProxy {
    pub port: u16,
}

impl CutProxy {
    pub fn start(target: std::net::SocketAddr, trigger: &'static [u8]) -> CutProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let cut_done = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let (mut c_in, mut s_out) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let (mut s_in, mut c_out) = (server, client);
                let cut = cut_done.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match c_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let hit = buf[..n].windows(trigger.len()).any(|w| w == trigger);
                        if hit && !cut.swap(true, Ordering::SeqCst) {
                            let _ = c_in.shutdown(std::net::Shutdown::Both);
                            let _ = s_out.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match s_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CutProxy { port }
    }
}
