//! Which database the relay keeps its log in: a SQLite file (the default) or
//! PostgreSQL (`--db postgres://…`), so several relays can share one log.
//!
//! A PostgreSQL target may carry a password (in the URL or from
//! `--db-password-file`); it never appears in `Debug`, `Display`, a log line
//! or an error: both show user, hosts, ports and database name only.

use std::fmt;
use std::path::PathBuf;

/// Where the relay's log lives.
// Built once at startup: the size of `Postgres` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by any number of relays.
    Postgres(PgTarget),
}

/// A `--db` value that looked like a PostgreSQL URL but is not one. Holds no
/// part of the value (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("the --db value is not a valid PostgreSQL URL (postgres://USER@HOST:PORT/DBNAME; the password goes in --db-password-file)")]
pub struct BadDbUrl;

impl Database {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else is the
    /// path of a SQLite file.
    pub fn parse(value: &str) -> Result<Database, BadDbUrl> {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(Database::Postgres(PgTarget::parse(value)?))
        } else {
            Ok(Database::Sqlite(PathBuf::from(value)))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(t) => t.fmt(f),
        }
    }
}

/// A PostgreSQL database to connect to. `Debug` and `Display` never show the
/// password.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
}

impl PgTarget {
    /// Parses a `postgres://` / `postgresql://` URL.
    pub fn parse(url: &str) -> Result<PgTarget, BadDbUrl> {
        let config: tokio_postgres::Config = url.parse().map_err(|_| BadDbUrl)?;
        if config.get_dbname().is_none() {
            return Err(BadDbUrl);
        }
        Ok(PgTarget { config })
    }

    /// The same target with this password (from `--db-password-file`).
    pub fn with_password(mut self, password: &[u8]) -> PgTarget {
        self.config.password(password);
        self
    }

    /// Whether a password is set (from the URL or a file).
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// The driver's connection settings (password included: do not log).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = self.config.get_user() {
            write!(f, "{user}@")?;
        }
        let ports = self.config.get_ports();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                tokio_postgres::config::Host::Tcp(h) => f.write_str(h)?,
                tokio_postgres::config::Host::Unix(p) => write!(f, "[{}]", p.display())?,
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", self.config.get_dbname().unwrap_or(""))
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_sqlite_and_a_postgres_url_is_postgres() {
        assert!(matches!(
            Database::parse("heartbridge-relay.db").unwrap(),
            Database::Sqlite(p) if p == std::path::Path::new("heartbridge-relay.db")
        ));
        assert!(matches!(
            Database::parse("/var/lib/x/postgres.db").unwrap(),
            Database::Sqlite(_)
        ));
        for url in [
            "postgres://relay@db.internal:5433/heartbridge",
            "postgresql://relay@db.internal:5433/heartbridge",
        ] {
            let db = Database::parse(url).unwrap();
            assert!(db.is_postgres());
            assert_eq!(
                db.to_string(),
                "postgres://relay@db.internal:5433/heartbridge"
            );
        }
        assert!(Database::parse("postgres://relay@db.internal:notaport/x").is_err());
    }

    #[test]
    fn the_password_never_shows() {
        let db = Database::parse("postgres://relay:hunter2-in-url@10.0.0.5:5432/hb").unwrap();
        let Database::Postgres(t) = &db else {
            panic!("postgres")
        };
        assert!(t.has_password());
        let t = t.clone().with_password(b"s3cret-from-file");
        assert_eq!(t.config().get_password(), Some(&b"s3cret-from-file"[..]));
        let config = crate::Config {
            database: Database::Postgres(t.clone()),
            ..crate::Config::new("unused.db")
        };
        for shown in [
            format!("{db:?}"),
            db.to_string(),
            format!("{t:?}"),
            t.to_string(),
            format!("{config:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("10.0.0.5:5432/hb"), "{shown}");
        }
        // A bad URL's error does not echo the value either.
        let err = Database::parse("postgres://relay:hunter2@h:99999999/x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
