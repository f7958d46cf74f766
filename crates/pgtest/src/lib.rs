//! A throw-away PostgreSQL cluster for tests and benchmarks.
//!
//! [`PgCluster::start`] runs `initdb` into a fresh temp dir and starts the server on a
//! free loopback port with its Unix socket in that dir; [`PgCluster::new_database`] makes
//! one empty database per test; dropping the cluster stops the server (also when the test
//! panics) and removes the files. No system service, no port 5432, no state shared
//! between runs.
//!
//! PostgreSQL refuses to run as root. When the test runs as root (CI does), every
//! PostgreSQL binary is started as the `postgres` system user (through
//! [`CommandExt::uid`]/[`CommandExt::gid`], no `su`), and the temp dir is handed to it.
//!
//! When PostgreSQL is not installed the harness panics ("PostgreSQL not found: apt-get
//! install postgresql") rather than skipping: a test that passes without a database could
//! not fail.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

/// The database role every cluster is initialised with (a superuser, `trust` auth).
pub const USER: &str = "heartbridge";

/// How many free ports `start` tries before giving up.
const PORT_TRIES: usize = 5;

/// A running PostgreSQL server owned by the test. Stopped on drop.
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// `Some((uid, gid))` of `postgres` when we run as root.
    user: Option<(u32, u32)>,
    next_db: AtomicU32,
}

impl PgCluster {
    /// `initdb` a new cluster in a temp dir and start it on a free loopback port; returns
    /// once the server accepts connections (`pg_ctl -w`).
    pub fn start() -> PgCluster {
        let bin = find_bindir();
        let user = server_user();
        let dir = tempfile::Builder::new()
            .prefix("hb-pg-")
            .tempdir()
            .expect("creating a temp dir for PostgreSQL");
        if let Some((uid, gid)) = user {
            chown(dir.path(), Some(uid), Some(gid)).expect("handing the temp dir to postgres");
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            user,
            next_db: AtomicU32::new(0),
        };
        let data = cluster.data_dir();
        let out = cluster
            .tool("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("running initdb");
        check("initdb", &out);

        for attempt in 1..=PORT_TRIES {
            let port = free_port();
            let opts = cluster.opts(port);
            let out = cluster
                .tool("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.log_path())
                .args(["-w", "-t", "60", "-o", &opts, "start"])
                .output()
                .expect("running pg_ctl start");
            if out.status.success() {
                cluster.port = port;
                return cluster;
            }
            let log = std::fs::read_to_string(cluster.log_path()).unwrap_or_default();
            if attempt == PORT_TRIES || !log.contains("could not bind") {
                panic!(
                    "pg_ctl start failed: {}\n{}\nserver log:\n{log}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database; returns its URL, `postgres://heartbridge@127.0.0.1:PORT/tN`.
    pub fn new_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{n}");
        let out = self
            .tool("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                &name,
            ])
            .output()
            .expect("running createdb");
        check("createdb", &out);
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Restart the server: `mode` is `pg_ctl`'s shutdown mode — `"fast"`, or
    /// `"immediate"` for a crash (the server recovers from its WAL on start). Returns
    /// once it accepts connections again, on the same port.
    pub fn restart(&self, mode: &str) {
        self.pg_ctl(&["-m", mode, "-w", "-t", "60", "restart"]);
    }

    /// Stop the server (`pg_ctl -m fast stop`): PostgreSQL is down until
    /// [`PgCluster::start_again`].
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
    }

    /// Start the stopped server again on the same port.
    pub fn start_again(&self) {
        self.pg_ctl(&["-w", "-t", "60", "-o", &self.opts(self.port), "start"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(args)
            .output()
            .expect("running pg_ctl");
        check(&format!("pg_ctl {}", args.last().unwrap_or(&"")), &out);
    }

    fn opts(&self, port: u16) -> String {
        format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_wal_size=2GB -c shared_buffers=128MB",
            self.dir.path().display()
        )
    }

    /// The path of a PostgreSQL tool of this cluster's version (`pg_dump`, `psql`, …).
    pub fn bin(&self, tool: &str) -> PathBuf {
        self.bin.join(tool)
    }

    /// A `Command` for a PostgreSQL tool, run as the server's user when we are root,
    /// in the cluster's dir (a root-only working dir would make the tools complain).
    pub fn tool(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin(tool));
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE");
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Run one SQL command through `psql` against `url` and return its unaligned,
    /// tuples-only output, trimmed. Panics if `psql` fails.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = self
            .tool("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .output()
            .expect("running psql");
        check("psql", &out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `pg_dump -Fc --no-owner` of the database `url` (one of
    /// [`PgCluster::new_database`]'s) into `file`, as deploy/OPERATIONS.md
    /// has the operator run it.
    pub fn dump(&self, url: &str, file: &Path) {
        let out = self.client_tool("pg_dump", url, &["-Fc", "--no-owner", "-f"], file);
        check("pg_dump", &out);
    }

    /// `pg_restore --exit-on-error --single-transaction --no-owner` of
    /// `file` into the (empty) database `url`.
    pub fn restore(&self, url: &str, file: &Path) {
        let out = self.client_tool(
            "pg_restore",
            url,
            &["--exit-on-error", "--single-transaction", "--no-owner"],
            file,
        );
        check("pg_restore", &out);
    }

    fn client_tool(
        &self,
        tool: &str,
        url: &str,
        args: &[&str],
        file: &Path,
    ) -> std::process::Output {
        let db = url.rsplit('/').next().unwrap_or(url);
        let port = self.port.to_string();
        self.tool(tool)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", USER, "-d", db])
            .args(args)
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"))
    }

    /// The cluster's temp dir (data dir, server log, Unix socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port == 0 {
            return; // never started
        }
        // Never panic here (it may run while unwinding); a failed stop leaves the log.
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output();
    }
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a loopback port");
    l.local_addr().expect("local address").port()
}

/// `$HEARTBRIDGE_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin` with `initdb`,
/// else the directory of `initdb` on `PATH`.
fn find_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARTBRIDGE_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("initdb").is_file(),
            "HEARTBRIDGE_PG_BINDIR={} has no initdb",
            dir.display()
        );
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("initdb"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
            .and_then(|p| p.parent().map(Path::to_path_buf))
    });
    on_path.unwrap_or_else(|| panic!("PostgreSQL not found: apt-get install postgresql"))
}

/// `Some((uid, gid))` of the `postgres` user when we run as root, else `None`.
fn server_user() -> Option<(u32, u32)> {
    if id(&["-u"]) != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"]), id(&["-g", "postgres"])))
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("running id");
    assert!(
        out.status.success(),
        "`id {}` failed: running as root needs the `postgres` user (apt-get install postgresql)",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("id prints a number")
}
