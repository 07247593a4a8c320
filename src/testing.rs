//! Support for the tests, unit and integration alike; no part of the relay uses it.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::secret::Secret;

/// Where the tests find a PostgreSQL server: a URL to any database on it. Not `ALERT_RELAY_…`:
/// the relay reads those as config.
pub const POSTGRES_ENV: &str = "RELAY_TEST_POSTGRES";
/// Without [`POSTGRES_ENV`]: the server this machine runs.
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The test server's URL: [`POSTGRES_ENV`], else the server this machine runs.
pub fn postgres_server() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// Creates a new, empty database on the test server and returns its URL; each call its own.
pub async fn fresh_postgres_database() -> Result<Secret, String> {
    fresh_postgres_database_on(&postgres_server())
        .await
        .map_err(|e| format!("{e} ({POSTGRES_ENV}, else {DEFAULT_POSTGRES})"))
}

/// Creates a new, empty database on the server at `base` (a URL to any database on it) and
/// returns its URL.
pub async fn fresh_postgres_database_on(base: &str) -> Result<Secret, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot reach PostgreSQL: {e:?}"))?;
    tokio::spawn(connection);
    let name = format!(
        "alert_relay_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("cannot create a database: {e}"))?;
    let mut url = url::Url::parse(base).map_err(|e| e.to_string())?;
    url.set_path(&format!("/{name}"));
    Ok(Secret::new(url.as_str()))
}
