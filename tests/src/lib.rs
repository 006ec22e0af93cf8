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

impl TestDb {
    /// A pool on this database (not yet migrated).
    pub fn store(&self) -> recon_store::Store {
        let cfg = recon_store::DbConfig::from_url(&self.url).expect("a test database URL is valid");
        recon_store::Store::new(&cfg).expect("a pool on the test database")
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

/// The local stand-ins of the ports, for the functions' handler tests: a directory as S3, an `.eml`
/// outbox as SES, executions in memory as Step Functions.
pub mod local {
    use std::path::{Path, PathBuf};

    use recon_app::keys::Source;
    use recon_app::notify::OutboxMailer;
    use recon_app::objects::{LocalStore, ObjectError, ObjectStore};
    use recon_app::settings::Settings;
    use recon_app::steps::fetch::FetchInput;
    use recon_app::steps::{MemoryExecutions, Ports};

    use recon_store::Store;

    /// The ports a function test runs its handler with.
    pub type LocalPorts = Ports<LocalStore, OutboxMailer, MemoryExecutions>;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Default settings (nothing from the environment) with no grace period, over a store at `root`
    /// whose outbox is `root/outbox`.
    pub fn ports(root: &Path, db: Option<Store>) -> LocalPorts {
        let mut settings = Settings::from_vars(|_| None).expect("the default settings are valid");
        settings.grace_days = 0;
        let mailer = OutboxMailer {
            dir: root.join("outbox"),
        };
        Ports::new(
            LocalStore::new(root),
            mailer,
            MemoryExecutions::default(),
            db,
            settings,
        )
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("creating a test folder");
        for entry in std::fs::read_dir(from).expect("reading the demo inbox").flatten() {
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            if src.is_dir() {
                copy_dir(&src, &dst);
            } else {
                std::fs::copy(&src, &dst).expect("copying a demo file");
            }
        }
    }

    /// A fresh local store holding the demo day's `inbox/` (`events/demo`).
    pub fn demo_store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary folder");
        copy_dir(&repo().join("events/demo/inbox"), &dir.path().join("inbox"));
        dir
    }

    /// Every event of `events/fetch-{source}/` through a fetch function's handler (the fetch step for the source), on the demo inbox in a
    /// local store: a key outside the source's inbox is refused (`InvalidInput`), a day with nothing dropped
    /// and no API configured is a missing source (`SourceUnavailable`), anything else is staged with its
    /// manifest written.
    pub async fn fetch_events(source: Source) {
        for (name, event) in events(&format!("fetch-{source}")) {
            let store = demo_store();
            let ports = ports(store.path(), None);
            let input: FetchInput = serde_json::from_value(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            let day = input.date.map(|d| d.to_string()).unwrap_or_default();
            let out = recon_app::steps::fetch::fetch(&ports, source, input, None).await;
            let nothing = !store.path().join(format!("inbox/{source}/{day}")).is_dir();
            if name.starts_with("bad-") || nothing {
                let want = if nothing {
                    "SourceUnavailable"
                } else {
                    "InvalidInput"
                };
                assert_eq!(out.err().map(|e| e.error_name()), Some(want), "{name}");
                continue;
            }
            let m = out.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.source_name, source, "{name}");
            assert!(
                store.path().join(&m.manifest_key).is_file(),
                "{name}: {}",
                m.manifest_key
            );
        }
    }

    /// An object store whose reads under `prefix` fail as a throttled or unavailable S3 would (retryable);
    /// everything else goes to `inner`.
    pub struct Flaky<S> {
        pub inner: S,
        pub prefix: String,
    }

    impl<S: ObjectStore> Flaky<S> {
        fn refuse(&self, key: &str) -> Result<(), ObjectError> {
            match key.starts_with(&self.prefix) {
                true => Err(ObjectError {
                    op: "get",
                    key: key.to_string(),
                    reason: "503 Slow Down".into(),
                    retryable: true,
                }),
                false => Ok(()),
            }
        }
    }

    impl<S: ObjectStore> ObjectStore for Flaky<S> {
        async fn get(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
            self.refuse(key)?;
            self.inner.get(key).await
        }
        async fn open(&self, key: &str) -> Result<(Box<dyn std::io::Read + Send>, Option<u64>), ObjectError> {
            self.refuse(key)?;
            self.inner.open(key).await
        }
        async fn open_range(
            &self,
            key: &str,
            from: u64,
            to: u64,
        ) -> Result<(Box<dyn std::io::Read + Send>, u64), ObjectError> {
            self.refuse(key)?;
            self.inner.open_range(key, from, to).await
        }
        async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), ObjectError> {
            self.inner.put(key, bytes, content_type).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
            self.inner.list(prefix).await
        }
        async fn put_new(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<bool, ObjectError> {
            self.inner.put_new(key, bytes, content_type).await
        }
        async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
            self.inner.exists(key).await
        }
        async fn copy(&self, from: &str, to: &str) -> Result<(), ObjectError> {
            self.inner.copy(from, to).await
        }
        async fn link(&self, key: &str) -> Result<String, ObjectError> {
            self.inner.link(key).await
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// The event files of `events/{function}/`, by file name, in name order.
    pub fn events(function: &str) -> Vec<(String, serde_json::Value)> {
        let dir = repo().join("events").join(function);
        let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).expect("reading an event file");
                let v =
                    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
                (e.file_name().to_string_lossy().to_string(), v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
