//! How to reach PostgreSQL (built by the application's settings).

use std::str::FromStr;

use crate::StoreError;

/// How to reach PostgreSQL. Debug output never shows the password.
#[derive(Clone)]
pub struct DbConfig {
    pub pg: tokio_postgres::Config,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.pg.get_hosts())
            .field("port", &self.pg.get_ports())
            .field("dbname", &self.pg.get_dbname())
            .field("user", &self.pg.get_user())
            .field("password", &"<redacted>")
            .finish()
    }
}

impl DbConfig {
    /// From a `postgres://` URL or key=value string.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        tokio_postgres::Config::from_str(url)
            .map(|pg| DbConfig { pg })
            .map_err(|_| {
                StoreError::Config("DATABASE_URL is not a valid PostgreSQL connection string".into())
            })
    }

    /// From separate parts (the seed's `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`).
    pub fn from_parts(host: &str, port: u16, dbname: &str, user: &str, password: Option<&str>) -> Self {
        let mut pg = tokio_postgres::Config::new();
        pg.host(host).port(port).dbname(dbname).user(user);
        if let Some(p) = password {
            pg.password(p);
        }
        DbConfig { pg }
    }
}
