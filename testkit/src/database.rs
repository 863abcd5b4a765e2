//! A database of one's own on the local PostgreSQL, so a test or bench never touches real jobs
//! nor another run's rows: [`TestDb`] names a fresh one and drops it afterwards, and
//! [`with_database`] turns a server URL into that database's URL. Overseer creates and
//! migrates the database when it first connects, so nothing here knows the schema. The same
//! fixture makes an embedded SQLite store instead ([`TestDb::sqlite`], or every [`TestDb::new`]
//! under `OVERSEER_TEST_STORE=sqlite`).

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

/// The server tests use when `OVERSEER_TEST_DATABASE_URL` is not set.
const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Numbers the databases of one process, so two tests of the same name never share one.
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A database URL without a `/database` part, so it cannot be pointed at another database.
#[derive(Debug, thiserror::Error)]
#[error("DATABASE_URL {0:?} has no database part")]
pub struct NoDatabasePart(pub String);

/// The PostgreSQL server tests use: `OVERSEER_TEST_DATABASE_URL`'s server, or the local one.
pub fn server_url() -> String {
    std::env::var("OVERSEER_TEST_DATABASE_URL").unwrap_or_else(|_| LOCAL_SERVER.into())
}

/// The same URL with another database name (its query string kept).
pub fn with_database(url: &str, database: &str) -> Result<String, NoDatabasePart> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let Some((server, _)) = base.rsplit_once('/') else {
        return Err(NoDatabasePart(url.to_string()));
    };
    Ok(match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    })
}

/// A database that exists for one test: empty when made, dropped when dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// For an embedded store, the directory of its file (removed when dropped).
    pub dir: Option<PathBuf>,
}

/// `OVERSEER_TEST_STORE=sqlite` makes [`TestDb::new`] an embedded store: the tests written
/// against the API, not the SQL, then run on SQLite unchanged.
pub const STORE_VARIABLE: &str = "OVERSEER_TEST_STORE";

impl TestDb {
    /// A fresh, empty database named after the test (Overseer creates and migrates it): on
    /// PostgreSQL, or on SQLite when [`STORE_VARIABLE`] says so.
    pub fn new(test: &str) -> TestDb {
        if std::env::var(STORE_VARIABLE).is_ok_and(|store| store == "sqlite") {
            return TestDb::sqlite(test);
        }
        TestDb::postgres(test)
    }

    /// A fresh, empty PostgreSQL database, whatever [`STORE_VARIABLE`] says.
    pub fn postgres(test: &str) -> TestDb {
        let name = unique_name(test);
        let url = with_database(&server_url(), &name).expect("test database url");
        drop_database(&server_url(), &name);
        TestDb {
            name,
            url,
            dir: None,
        }
    }

    /// A fresh embedded store: `overseer.db` in a directory of its own.
    pub fn sqlite(test: &str) -> TestDb {
        let name = unique_name(test);
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the test's SQLite file");
        let url = format!("sqlite://{}", dir.join("overseer.db").display());
        TestDb {
            name,
            url,
            dir: Some(dir),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.dir.is_some()
    }
}

fn unique_name(test: &str) -> String {
    let n = NEXT_DB.fetch_add(1, Ordering::SeqCst);
    format!("overseer_test_{test}_{}_{n}", std::process::id())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.dir {
            Some(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            None => drop_database(&server_url(), &self.name),
        }
    }
}

/// Drops `name` on `server` from a thread of its own: `Drop` cannot be async, and a test's
/// runtime may be the one calling. A server that cannot be reached leaves nothing to drop.
pub fn drop_database(server: &str, name: &str) {
    let name = name.replace('"', "\"\"");
    let server = server.to_string();
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok((client, connection)) =
                tokio_postgres::connect(&server, tokio_postgres::NoTls).await
            else {
                return;
            };
            let driver = tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
            drop(client);
            let _ = driver.await;
        });
    })
    .join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "other").ok(),
            Some("postgres://u@h:5432/other?sslmode=disable".to_string())
        );
    }

    #[test]
    fn with_database_refuses_a_url_without_a_database_part() {
        assert!(with_database("postgres:", "other").is_err());
    }
}
