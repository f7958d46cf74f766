//! `heartbridge-relay`: serve the relay, or run an operator command on its
//! database.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use heartbridge_proto::Secret;
use heartbridge_relay::{
    Config, Database, RateLimits, DEFAULT_COMPACTION_GRACE, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_PUSH_ENVELOPES,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "heartbridge-relay",
    version,
    about = "The Heartbridge zero-knowledge sync relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Db {
    /// The SQLite database file, or a PostgreSQL database shared by several
    /// relays: postgres://USER@HOST:PORT/DBNAME (password: --db-password-file).
    #[arg(
        long = "db",
        env = "HEARTBRIDGE_RELAY_DB",
        default_value = "heartbridge-relay.db"
    )]
    path: PathBuf,
    /// A file holding the PostgreSQL password (surrounding whitespace
    /// aside); never printed or logged.
    #[arg(long = "db-password-file", env = "HEARTBRIDGE_RELAY_DB_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
}

impl Db {
    /// `--db` as a [`Database`]: a `postgres://` URL (with the password from
    /// `--db-password-file`) or a SQLite path.
    fn database(&self) -> anyhow::Result<Database> {
        let value = self.path.to_str().unwrap_or_default();
        let db = if value.is_empty() {
            Database::Sqlite(self.path.clone())
        } else {
            Database::parse(value)?
        };
        match (db, &self.password_file) {
            (Database::Postgres(t), Some(file)) => {
                let password = read_secret_file(file, "database password")?;
                Ok(Database::Postgres(
                    t.with_password(password.expose().as_bytes()),
                ))
            }
            (Database::Sqlite(_), Some(_)) => {
                anyhow::bail!("--db-password-file is for a PostgreSQL --db (postgres://…)")
            }
            (db, None) => Ok(db),
        }
    }

    /// The SQLite file, for the commands that only work on one (the venue
    /// relay's, the self-signed certificate kept next to it).
    fn sqlite(&self, what: &str) -> anyhow::Result<&std::path::Path> {
        anyhow::ensure!(
            !self.database()?.is_postgres(),
            "{what} needs a SQLite --db: a venue relay keeps its database in SQLite"
        );
        Ok(&self.path)
    }
}

#[derive(clap::Args)]
struct Grace {
    /// Seconds envelopes a snapshot superseded are kept (no longer pulled)
    /// before they are deleted; within them a compaction can be undone.
    #[arg(long = "compaction-grace", env = "HEARTBRIDGE_RELAY_COMPACTION_GRACE", default_value_t = DEFAULT_COMPACTION_GRACE.as_secs())]
    secs: u64,
}

// Parsed once at startup: the size of `Serve` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the relay until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on.
        #[arg(
            long,
            env = "HEARTBRIDGE_RELAY_LISTEN",
            default_value = "127.0.0.1:7070"
        )]
        listen: SocketAddr,
        #[command(flatten)]
        db: Db,
        /// Largest request body, in bytes.
        #[arg(long = "max-body", env = "HEARTBRIDGE_RELAY_MAX_BODY", default_value_t = DEFAULT_MAX_BODY_BYTES)]
        max_body: usize,
        /// Cap on the bytes of one pull page as encoded (envelope framing included).
        #[arg(long = "page-bytes", env = "HEARTBRIDGE_RELAY_PAGE_BYTES", default_value_t = heartbridge_proto::DEFAULT_PAGE_BYTES)]
        page_bytes: u32,
        /// Most envelopes in one push; more are refused whole (413 too_many_envelopes).
        #[arg(long = "max-push-envelopes", env = "HEARTBRIDGE_RELAY_MAX_PUSH_ENVELOPES", default_value_t = DEFAULT_MAX_PUSH_ENVELOPES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        max_push_envelopes: usize,
        /// Most bytes of lesson chunks one team may store; more are refused (507 quota). 0: no limit.
        #[arg(long = "blob-quota-bytes", env = "HEARTBRIDGE_RELAY_BLOB_QUOTA_BYTES", default_value_t = heartbridge_relay::DEFAULT_BLOB_QUOTA_BYTES)]
        blob_quota_bytes: u64,
        /// Seconds a client has to send a request's headers (also how long an
        /// idle keep-alive connection stays open); then the connection is closed.
        #[arg(long = "header-timeout", env = "HEARTBRIDGE_RELAY_HEADER_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        header_timeout: u64,
        /// Seconds a client has to send a request's body; then 408 timeout and
        /// the connection is closed.
        #[arg(long = "body-timeout", env = "HEARTBRIDGE_RELAY_BODY_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        body_timeout: u64,
        /// Enrollments (claim, join) a minute from one client address; 0: no limit.
        #[arg(long = "enroll-rate-ip", env = "HEARTBRIDGE_RELAY_ENROLL_RATE_IP", default_value_t = RateLimits::DEFAULT.enroll_per_ip)]
        enroll_rate_ip: u32,
        /// Enrollments a minute with one lead or invite token; 0: no limit.
        #[arg(long = "enroll-rate-token", env = "HEARTBRIDGE_RELAY_ENROLL_RATE_TOKEN", default_value_t = RateLimits::DEFAULT.enroll_per_token)]
        enroll_rate_token: u32,
        /// Failed authentications (missing or unknown bearer token) a minute
        /// from one client address; 0: no limit.
        #[arg(long = "auth-fail-rate-ip", env = "HEARTBRIDGE_RELAY_AUTH_FAIL_RATE_IP", default_value_t = RateLimits::DEFAULT.auth_fail_per_ip)]
        auth_fail_rate_ip: u32,
        /// Failed authentications a minute with one token; 0: no limit.
        #[arg(long = "auth-fail-rate-token", env = "HEARTBRIDGE_RELAY_AUTH_FAIL_RATE_TOKEN", default_value_t = RateLimits::DEFAULT.auth_fail_per_token)]
        auth_fail_rate_token: u32,
        /// Serve /metrics (and /healthz) on this address too, for monitoring
        /// only. Without it or --metrics-token-file, /metrics is not served.
        #[arg(long = "metrics-listen", env = "HEARTBRIDGE_RELAY_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// A file holding the bearer token /metrics asks for; with it,
        /// /metrics is served on the public address too (and asks for the
        /// token on --metrics-listen as well).
        #[arg(
            long = "metrics-token-file",
            env = "HEARTBRIDGE_RELAY_METRICS_TOKEN_FILE"
        )]
        metrics_token_file: Option<PathBuf>,
        #[command(flatten)]
        grace: Grace,
        /// Log one JSON object per line instead of text.
        #[arg(long = "log-json", env = "HEARTBRIDGE_RELAY_LOG_JSON")]
        log_json: bool,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        venue: VenueArgs,
        /// Announce this relay on the local network (mDNS/DNS-SD,
        /// _heartbridge._tcp.local.) with its team's tag and certificate
        /// fingerprint: for a venue relay serving one team.
        #[arg(long, env = "HEARTBRIDGE_RELAY_ADVERTISE")]
        advertise: bool,
    },
    /// A venue relay: enroll it at the upstream relay.
    #[command(subcommand)]
    Venue(VenueCmd),
    /// Print the fingerprint devices pin (sha256:<base64url>) of the
    /// certificate `serve` uses: the self-signed one kept next to --db, or
    /// the file given with --tls-cert.
    Fingerprint {
        #[command(flatten)]
        db: Db,
        /// A PEM certificate file (its first certificate is the leaf).
        #[arg(long = "tls-cert", env = "HEARTBRIDGE_RELAY_TLS_CERT")]
        cert: Option<PathBuf>,
    },
    /// Teams: create, list.
    #[command(subcommand)]
    Team(TeamCmd),
    /// Devices: revoke.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Compactions: list, undo.
    #[command(subcommand)]
    Compaction(CompactionCmd),
    /// Copy a SQLite relay database into a new file, consistently, while
    /// relays serve it. For PostgreSQL, prints the pg_dump command to use.
    Backup {
        #[command(flatten)]
        db: Db,
        /// The backup file to make; an existing file is refused.
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a backup back as a SQLite relay database, after checking that it
    /// opens and migrates. For PostgreSQL, prints the pg_restore command.
    Restore {
        /// A file `heartbridge-relay backup` made.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        db: Db,
        /// Replace an existing database (refused while a relay has it open).
        #[arg(long)]
        force: bool,
    },
    /// Give the relay database's log a new id, after it was put back to an
    /// earlier point (pg_restore of a dump, a PostgreSQL point-in-time
    /// recovery), with every relay on it stopped: devices then pull the
    /// log again from its start and push what they hold, so what they
    /// pushed after that point is not lost. `restore` (SQLite) does it
    /// itself. With --show, prints the current id and changes nothing.
    NewLogId {
        #[command(flatten)]
        db: Db,
        /// Print the log id and change nothing.
        #[arg(long)]
        show: bool,
    },
}

#[derive(clap::Args)]
struct TlsArgs {
    /// Serve HTTPS with a self-signed certificate generated once and kept
    /// next to the database (<db>.tls-cert.pem, <db>.tls-key.pem); devices
    /// pin its fingerprint (`heartbridge-relay fingerprint`).
    #[arg(long = "tls-self-signed", env = "HEARTBRIDGE_RELAY_TLS_SELF_SIGNED", conflicts_with_all = ["cert", "key"])]
    self_signed: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(
        long = "tls-cert",
        env = "HEARTBRIDGE_RELAY_TLS_CERT",
        requires = "key"
    )]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long = "tls-key", env = "HEARTBRIDGE_RELAY_TLS_KEY", requires = "cert")]
    key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct VenueArgs {
    /// Run as a venue relay forwarding to this upstream (central) relay;
    /// the database must have been enrolled with `venue join` (this URL
    /// overrides the one of the invite).
    #[arg(long = "upstream", env = "HEARTBRIDGE_RELAY_UPSTREAM")]
    upstream: Option<String>,
    /// A file holding the relay's upstream device token (default: the one
    /// `venue join` stored in the database).
    #[arg(
        long = "upstream-token",
        env = "HEARTBRIDGE_RELAY_UPSTREAM_TOKEN_FILE",
        requires = "upstream"
    )]
    upstream_token: Option<PathBuf>,
    /// The address devices use for this relay, which their signed requests
    /// name (default: http://<listen>); with TLS its certificate
    /// fingerprint is used instead.
    #[arg(long = "public-url", env = "HEARTBRIDGE_RELAY_PUBLIC_URL")]
    public_url: Option<String>,
    /// The upstream relay's certificate fingerprint (sha256:…), if not the
    /// one the relay invite code carried.
    #[arg(
        long = "upstream-pin",
        env = "HEARTBRIDGE_RELAY_UPSTREAM_PIN",
        requires = "upstream"
    )]
    upstream_pin: Option<String>,
    /// Forward to a plain http:// upstream on another machine anyway: the
    /// relay's upstream token then crosses the network in clear. Only for a
    /// link you trust; prefer the central relay's https:// address.
    #[arg(
        long = "upstream-insecure-http",
        env = "HEARTBRIDGE_RELAY_UPSTREAM_INSECURE_HTTP",
        requires = "upstream"
    )]
    upstream_insecure_http: bool,
}

#[derive(Subcommand)]
enum VenueCmd {
    /// Enroll this relay (database --db) at the upstream relay with a
    /// relay invite code (`heartbridge team invite --role relay` on the
    /// lead's device; read from standard input when not given). The code
    /// carries no team key; the relay's own device keys and upstream token
    /// are kept in the database.
    Join {
        code: Option<String>,
        #[command(flatten)]
        db: Db,
        /// The upstream relay's URL, if not the one in the code.
        #[arg(long = "upstream", env = "HEARTBRIDGE_RELAY_UPSTREAM")]
        upstream: Option<String>,
        /// Enroll at a plain http:// upstream on another machine anyway (the
        /// invite and the relay's token cross the network in clear).
        #[arg(
            long = "upstream-insecure-http",
            env = "HEARTBRIDGE_RELAY_UPSTREAM_INSECURE_HTTP"
        )]
        upstream_insecure_http: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What this venue relay (database --db) has forwarded: the backlog
    /// not yet answered upstream, and what the upstream relay refused (an
    /// author removed after writing, most often), which never reaches it.
    Status {
        #[command(flatten)]
        db: Db,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CompactionCmd {
    /// List a team's compactions that can still be undone (inside the
    /// grace): document, snapshot seq, the device that pushed it, how many
    /// envelopes it superseded, when.
    List {
        /// The team id (32 hex digits).
        #[arg(long)]
        team: String,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        grace: Grace,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Undo the last compaction of a team's document, inside the grace: the
    /// envelopes its snapshot superseded are served to pulls again (from the
    /// next request, also of a running relay). Devices that pull them merge
    /// them as usual.
    Undo {
        /// The team id (32 hex digits).
        #[arg(long)]
        team: String,
        /// The document id (32 hex digits), as the relay's log names it.
        #[arg(long)]
        doc: String,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        grace: Grace,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TeamCmd {
    /// Create a team; prints its id and the one-time lead token for the team lead.
    Create {
        name: String,
        #[command(flatten)]
        db: Db,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the teams.
    List {
        #[command(flatten)]
        db: Db,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Revoke a device: its token is refused from the next request on
    /// (device_revoked; GET /v1/roster still answers), the invites it made
    /// stop working. Prints the cut-off seq for the team lead.
    Revoke {
        device_id: String,
        #[command(flatten)]
        db: Db,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            db,
            max_body,
            page_bytes,
            max_push_envelopes,
            blob_quota_bytes,
            header_timeout,
            body_timeout,
            enroll_rate_ip,
            enroll_rate_token,
            auth_fail_rate_ip,
            auth_fail_rate_token,
            metrics_listen,
            metrics_token_file,
            grace,
            log_json,
            tls,
            venue,
            advertise,
        } => {
            init_logging(log_json);
            let database = db.database()?;
            if database.is_postgres() {
                anyhow::ensure!(
                    venue.upstream.is_none(),
                    "a venue relay keeps its database in SQLite: --upstream cannot be used with a PostgreSQL --db"
                );
                anyhow::ensure!(
                    !tls.self_signed,
                    "--tls-self-signed keeps the certificate next to a SQLite --db; with PostgreSQL give --tls-cert and --tls-key (the same files on every relay: devices pin one certificate)"
                );
                anyhow::ensure!(
                    !advertise,
                    "--advertise is for a venue relay, which keeps its database in SQLite"
                );
            }
            let tls = if tls.self_signed {
                Some(heartbridge_relay::tls::Tls::self_signed(&db.path)?)
            } else if let (Some(cert), Some(key)) = (tls.cert, tls.key) {
                Some(heartbridge_relay::tls::Tls::from_files(&cert, &key)?)
            } else {
                None
            };
            let metrics_token_hash = match metrics_token_file {
                Some(path) => Some(read_token(&path)?.hash()),
                None => None,
            };
            let config = Config {
                max_body_bytes: max_body,
                page_bytes,
                max_push_envelopes,
                blob_quota_bytes,
                header_timeout: Duration::from_secs(header_timeout),
                body_timeout: Duration::from_secs(body_timeout),
                rate_limits: RateLimits {
                    enroll_per_ip: enroll_rate_ip,
                    enroll_per_token: enroll_rate_token,
                    auth_fail_per_ip: auth_fail_rate_ip,
                    auth_fail_per_token: auth_fail_rate_token,
                },
                metrics_token_hash,
                compaction_grace: Duration::from_secs(grace.secs),
                venue: match &venue.upstream {
                    Some(upstream) => {
                        let public_url = venue
                            .public_url
                            .as_deref()
                            .map(|u| u.trim().trim_end_matches('/').to_owned());
                        // Devices sign for the address they know the relay
                        // by: on a wildcard listen no default is one of them
                        // (review L1).
                        if tls.is_none() && public_url.is_none() && listen.ip().is_unspecified() {
                            anyhow::bail!(
                                "a venue relay listening on {listen} needs --public-url http://ADDRESS:PORT (the address devices use for it, which their signed requests name), or serve TLS"
                            );
                        }
                        let relay_id = match &tls {
                            Some(t) => t.fingerprint(),
                            None => public_url
                                .clone()
                                .unwrap_or_else(|| format!("http://{listen}")),
                        };
                        let mut v = heartbridge_relay::venue::VenueConfig::new(relay_id);
                        if tls.is_some() {
                            // An entry without a pin signs for its URL.
                            v.public_urls.extend(public_url);
                        }
                        v.upstream = Some(upstream.trim_end_matches('/').to_owned());
                        v.upstream_pin = venue.upstream_pin.clone();
                        v.upstream_insecure_http = venue.upstream_insecure_http;
                        if let Some(path) = &venue.upstream_token {
                            v.token = Some(read_secret_file(path, "upstream token")?);
                        }
                        Some(v)
                    }
                    None => None,
                },
                tls,
                // PostgreSQL: each storage thread holds a connection for its
                // round trips, so run more of them.
                storage_threads: if database.is_postgres() {
                    8
                } else {
                    heartbridge_relay::DEFAULT_STORAGE_THREADS
                },
                database,
                ..Config::new(db.path)
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(serve(listen, metrics_listen, config, advertise))
        }
        Command::Venue(VenueCmd::Join {
            code,
            db,
            upstream,
            upstream_insecure_http,
            json,
        }) => {
            init_logging(false);
            let code = match code {
                Some(c) => c,
                None => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                        .context("reading the invite code from standard input")?;
                    s
                }
            };
            let joined = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(heartbridge_relay::venue::join_with(
                    db.sqlite("venue join")?,
                    &code,
                    upstream.as_deref(),
                    upstream_insecure_http,
                ))
                .with_context(|| format!("enrolling the venue relay of {}", db.path.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"team_id": joined.team_id, "device_id": joined.device_id, "upstream": joined.upstream, "already": joined.already})
                );
            } else {
                println!(
                    "Venue relay {} of team {} enrolled at {}{}. Serve it with `heartbridge-relay serve --db {} --upstream {}`.",
                    joined.device_id,
                    joined.team_id,
                    joined.upstream,
                    if joined.already { " (already)" } else { "" },
                    db.path.display(),
                    joined.upstream
                );
            }
            Ok(())
        }
        Command::Venue(VenueCmd::Status { db, json }) => {
            let Some(st) = heartbridge_relay::venue::status(db.sqlite("venue status")?)? else {
                anyhow::bail!(
                    "{} is not a venue relay's database: enroll it with `heartbridge-relay venue join --db {}`",
                    db.path.display(),
                    db.path.display()
                );
            };
            if json {
                println!("{}", serde_json::to_string(&st)?);
            } else {
                println!(
                    "Venue relay of team {} forwarding to {}{}.\nWaiting to go up: {}\nHeld by the central relay: {}\nRefused by the central relay: {}{}",
                    st.team,
                    st.upstream,
                    if st.enrolled { "" } else { " (not enrolled yet)" },
                    st.backlog,
                    st.at_upstream,
                    st.refused_upstream,
                    if st.refused_upstream > 0 {
                        " (written by members the lead removed since, most often: they stay here and never reach the central relay)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Command::Fingerprint { db, cert } => {
            let fp = match cert {
                Some(cert) => heartbridge_relay::tls::fingerprint_of_file(&cert)?,
                None => {
                    let (cert, _) = heartbridge_relay::tls::self_signed_paths(
                        db.sqlite("the self-signed certificate")?,
                    );
                    anyhow::ensure!(
                        cert.exists(),
                        "no self-signed certificate next to {} yet: start the relay once with `serve --tls-self-signed --db {}`",
                        db.path.display(),
                        db.path.display()
                    );
                    heartbridge_relay::tls::fingerprint_of_file(&cert)?
                }
            };
            println!("{fp}");
            Ok(())
        }
        Command::Team(TeamCmd::Create { name, db, json }) => {
            anyhow::ensure!(!name.trim().is_empty(), "the team name is empty");
            let database = db.database()?;
            let created = heartbridge_relay::create_team_in(&database, name.trim())
                .with_context(|| format!("creating a team in {database}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!("team id:    {}", created.team_id);
                println!("lead token: {}", created.lead_token.expose());
                println!("Give both to the team lead in person; the token works once and is not stored here.");
            }
            Ok(())
        }
        Command::Team(TeamCmd::List { db, json }) => {
            let database = db.database()?;
            let teams = heartbridge_relay::list_teams_in(&database)
                .with_context(|| format!("reading {database}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&teams)?);
            } else {
                println!(
                    "{:<32}  {:<7}  {:>7}  {:>9}  name",
                    "team id", "claimed", "devices", "envelopes"
                );
                for t in teams {
                    let claimed = if t.claimed { "yes" } else { "no" };
                    println!(
                        "{:<32}  {:<7}  {:>7}  {:>9}  {}",
                        t.team_id, claimed, t.devices, t.envelopes, t.name
                    );
                }
            }
            Ok(())
        }
        Command::Backup { db, out } => {
            let database = db.database()?;
            if let Database::Postgres(t) = &database {
                let (dump, _) = heartbridge_relay::backup::pg_commands(t);
                anyhow::bail!(
                    "a PostgreSQL relay database is backed up with pg_dump, while relays serve it:\n  {dump}\n(see deploy/OPERATIONS.md)"
                );
            }
            let summary = heartbridge_relay::backup::backup_sqlite(&db.path, &out)?;
            println!(
                "backed up {} to {}: {} teams, {} devices, {} envelopes",
                db.path.display(),
                out.display(),
                summary.teams,
                summary.devices,
                summary.envelopes
            );
            Ok(())
        }
        Command::Restore { from, db, force } => {
            let database = db.database()?;
            if let Database::Postgres(t) = &database {
                let (_, restore) = heartbridge_relay::backup::pg_commands(t);
                anyhow::bail!(
                    "a PostgreSQL relay database is restored with pg_restore into a new, empty database, relays stopped:\n  {restore}\nthen give its log a new id, so devices push again what it lost:\n  heartbridge-relay new-log-id --db <the new database>\nthen point --db at it and start the relays (see deploy/OPERATIONS.md)"
                );
            }
            let summary = heartbridge_relay::backup::restore_sqlite(&from, &db.path, force)?;
            println!(
                "restored {} into {}: {} teams, {} devices, {} envelopes; new log id {} (devices will pull the log again and push what the backup lacks)",
                from.display(),
                db.path.display(),
                summary.teams,
                summary.devices,
                summary.envelopes,
                summary.log_id.map(|l| l.to_hex()).unwrap_or_default()
            );
            Ok(())
        }
        Command::NewLogId { db, show } => {
            let database = db.database()?;
            if show {
                let id = heartbridge_relay::log_id_in(&database)
                    .with_context(|| format!("reading {database}"))?;
                println!("log id {}", id.to_hex());
            } else {
                let id = heartbridge_relay::new_log_id_in(&database)
                    .with_context(|| format!("making a new log id in {database}"))?;
                println!(
                    "new log id {}: devices will pull the log again from its start and push what they hold (restart any relay still running on this database)",
                    id.to_hex()
                );
            }
            Ok(())
        }
        Command::Device(DeviceCmd::Revoke { device_id, db }) => {
            let database = db.database()?;
            let cutoff = heartbridge_relay::revoke_device_in(&database, &device_id)
                .with_context(|| format!("revoking a device in {database}"))?;
            println!("device {} revoked; cutoff seq {cutoff}", device_id.trim());
            Ok(())
        }
        Command::Compaction(CompactionCmd::List {
            team,
            db,
            grace,
            json,
        }) => {
            let database = db.database()?;
            let list = heartbridge_relay::list_compactions_in(
                &database,
                &team,
                Duration::from_secs(grace.secs),
                heartbridge_relay::unix_now(),
            )
            .with_context(|| format!("reading {database}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<32}  {:>12}  {:<32}  {:>10}  at",
                    "document", "snapshot seq", "pushed by", "superseded"
                );
                for c in list {
                    println!(
                        "{:<32}  {:>12}  {:<32}  {:>10}  {}",
                        c.doc,
                        c.snapshot_seq,
                        c.author.as_deref().unwrap_or("-"),
                        c.superseded,
                        c.at
                    );
                }
            }
            Ok(())
        }
        Command::Compaction(CompactionCmd::Undo {
            team,
            doc,
            db,
            grace,
            json,
        }) => {
            let database = db.database()?;
            let undone = heartbridge_relay::undo_compaction_in(
                &database,
                &team,
                &doc,
                Duration::from_secs(grace.secs),
                heartbridge_relay::unix_now(),
            )
            .with_context(|| format!("undoing a compaction in {database}"))?;
            let Some(undone) = undone else {
                anyhow::bail!(
                    "document {} of team {} has no compaction inside the grace to undo",
                    doc.trim(),
                    team.trim()
                );
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&undone)?);
            } else {
                println!(
                    "restored {} envelopes superseded by the snapshot at seq {}",
                    undone.restored, undone.snapshot_seq
                );
            }
            Ok(())
        }
    }
}

/// Logs to stderr, filtered by `HEARTBRIDGE_RELAY_LOG` or `RUST_LOG`
/// (default `info`).
fn init_logging(json: bool) {
    let filter = std::env::var("HEARTBRIDGE_RELAY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Reads the metrics bearer token from a file (surrounding whitespace
/// aside); never prints it.
fn read_secret_file(path: &std::path::Path, what: &str) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} file {}", path.display()))?;
    let token = text.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the {what} file {} is empty",
        path.display()
    );
    Ok(Secret::from_string(token.to_owned()))
}

fn read_token(path: &std::path::Path) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the metrics token file {}", path.display()))?;
    let token = text.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the metrics token file {} is empty",
        path.display()
    );
    Ok(Secret::from_string(token.to_owned()))
}

async fn serve(
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    config: Config,
    advertise: bool,
) -> anyhow::Result<()> {
    let listener = bind(listen).with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let _advertiser = if advertise {
        Some(announce(&config, addr.port())?)
    } else {
        None
    };
    let metrics_listener = match metrics_listen {
        Some(m) => Some(bind(m).with_context(|| format!("listening for metrics on {m}"))?),
        None => None,
    };
    let r = config.rate_limits;
    tracing::info!(
        db = %config.database,
        max_body = config.max_body_bytes,
        page_bytes = config.page_bytes,
        max_push_envelopes = config.max_push_envelopes,
        header_timeout_s = config.header_timeout.as_secs(),
        body_timeout_s = config.body_timeout.as_secs(),
        enroll_rate_ip = r.enroll_per_ip,
        enroll_rate_token = r.enroll_per_token,
        auth_fail_rate_ip = r.auth_fail_per_ip,
        auth_fail_rate_token = r.auth_fail_per_token,
        metrics_token = config.metrics_token_hash.is_some(),
        compaction_grace_s = config.compaction_grace.as_secs(),
        tls = config.tls.is_some(),
        "starting"
    );
    match &config.tls {
        Some(tls) => {
            // The fingerprint is public (devices pin it); the key never leaves
            // its file.
            tracing::info!(fingerprint = %tls.fingerprint(), "serving HTTPS");
            eprintln!("listening on {addr}");
            eprintln!(
                "serving HTTPS; certificate fingerprint: {}",
                tls.fingerprint()
            );
        }
        None => eprintln!("listening on {addr}"),
    }
    match metrics_listener {
        Some(m) => {
            let maddr = m
                .local_addr()
                .context("reading the bound metrics address")?;
            eprintln!("metrics listening on {maddr}");
            heartbridge_relay::serve_with_metrics_listener(listener, m, config, shutdown_signal())
                .await?;
        }
        None => heartbridge_relay::serve(listener, config, shutdown_signal()).await?,
    }
    tracing::info!("stopped");
    Ok(())
}

/// `--advertise`: the team is the one team this relay's database serves.
fn announce(
    config: &Config,
    port: u16,
) -> anyhow::Result<heartbridge_relay::advertise::Advertiser> {
    let teams = heartbridge_relay::list_teams(&config.db_path)
        .with_context(|| format!("reading {}", config.db_path.display()))?;
    let [team] = &teams[..] else {
        anyhow::bail!(
            "--advertise is for a venue relay serving one team; {} serves {}: leave --advertise out",
            config.db_path.display(),
            teams.len()
        );
    };
    let team = heartbridge_proto::TeamId::from_hex(&team.team_id).context("reading the team id")?;
    let fp = config.tls.as_ref().map(|t| t.fingerprint());
    let adv = heartbridge_relay::advertise::Advertiser::start(&team, fp.as_deref(), port)?;
    tracing::info!(
        service = heartbridge_relay::advertise::SERVICE_TYPE,
        "announced on the local network"
    );
    Ok(adv)
}

/// Connections the kernel may hold before the relay accepts them (capped by
/// `net.core.somaxconn`). At shift end a thousand devices connect at once;
/// the usual 128 would overflow and make some of them wait or fail.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: finishing in-flight requests"),
        _ = terminate => tracing::info!("SIGTERM: finishing in-flight requests"),
    }
}
