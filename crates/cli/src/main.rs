//! `heartbridge`: everything the app does, from a terminal or a script.
//!
//! Every command takes `--profile DIR` (or `HEARTBRIDGE_PROFILE`) and
//! `--json`. Output goes to stdout; errors go to stderr with a message that
//! says what to do and a non-zero exit code.

mod bundle_cli;
mod duty_cli;
mod lesson_cli;
mod output;
mod relays_cli;
mod stats_cli;
mod supervision_cli;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use heartbridge_client::BlockingTransport;
use heartbridge_core::{
    CaseFilter, CaseUpdate, Channel, DocKind, Group, NewCase, Protection, Risk, Status, Store,
    SyncOptions, Unlock,
};
use serde_json::json;
use zeroize::Zeroizing;

use output::Out;

#[derive(Parser)]
#[command(
    name = "heartbridge",
    version,
    about = "Heartbridge: handbooks and case notes for support volunteers, offline first"
)]
struct Cli {
    /// The profile directory (one per volunteer and device).
    #[arg(long, global = true, env = "HEARTBRIDGE_PROFILE")]
    profile: Option<PathBuf>,
    /// Print one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new profile.
    Init {
        /// Your name as your team sees it.
        #[arg(long)]
        name: String,
        /// Wrong passphrases in a row after which this device erases the profile.
        #[arg(long, default_value_t = heartbridge_core::DEFAULT_MAX_FAILED)]
        max_failed: u32,
    },
    /// Handbooks: import, list, read, search.
    #[command(subcommand)]
    Handbook(HandbookCmd),
    /// Cases: the people you follow, under an alias.
    #[command(subcommand)]
    Case(CaseCmd),
    /// Your team: claim it as lead, invite devices, list members.
    #[command(subcommand)]
    Team(TeamCmd),
    /// Join a team with an invite code (creates the profile if needed).
    Join {
        /// The invite code. Better left out: then it is read from standard
        /// input (paste it, or pipe it), so it never lands in shell history.
        code: Option<String>,
        /// Read the invite code from this file instead.
        #[arg(long, conflicts_with = "code")]
        code_file: Option<PathBuf>,
        /// Your name as your team sees it (needed if the profile is new).
        #[arg(long)]
        name: Option<String>,
    },
    /// Send this device's changes to the relay and fetch the team's.
    Sync {
        /// Cap on the bytes of each pulled page (small pages for slow links).
        #[arg(long, default_value_t = 0)]
        page_bytes: u32,
        /// Also push a snapshot of every document, so the relay can drop older envelopes.
        #[arg(long)]
        snapshot: bool,
    },
    /// Sync state: last sync, changes waiting, last error.
    Status,
    #[command(flatten)]
    Supervision(supervision_cli::TopCmd),
    /// The duty roster (四线值守): the team's lines and who is on duty when.
    #[command(subcommand)]
    Duty(duty_cli::DutyCmd),
    /// Your shift: start it on a line, end it with a handover note.
    #[command(subcommand)]
    Shift(duty_cli::ShiftCmd),
    /// The team's statistics (lead and supervisors): 服务人次, cases, escalations, follow-ups, hours; --csv exports them de-identified.
    Stats(stats_cli::StatsArgs),
    /// Carry changes without a network: export them to a file (or QR codes), import them on another device.
    #[command(subcommand)]
    Bundle(bundle_cli::BundleCmd),
    /// Micro-lessons (audio, video) a handbook carries: add, list, fetch (asks first on a metered link), play offline, count viewings.
    #[command(subcommand)]
    Lesson(lesson_cli::LessonCmd),
}

#[derive(Subcommand)]
enum TeamCmd {
    /// Claim a team the relay operator created, as its lead.
    Claim {
        #[arg(long)]
        relay: String,
        /// The lead token printed by `heartbridge-relay team create`.
        #[arg(long)]
        token: String,
        /// Your name (needed if the profile is new).
        #[arg(long)]
        name: Option<String>,
        /// The relay's certificate fingerprint when it serves a self-signed
        /// certificate (`heartbridge-relay fingerprint`); it goes into every
        /// invite code.
        #[arg(long)]
        pin: Option<String>,
    },
    /// Print an invite code for a new device.
    Invite {
        #[arg(long, default_value = "volunteer")]
        role: String,
        /// Hours the code works for.
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
    /// The team's devices with role and last sync.
    Members,
    /// Remove a device from the team (lead only): the relay refuses it at
    /// once, a new team key is sealed to every other device, and the removed
    /// device erases itself when it next syncs.
    Revoke {
        /// The device id, as `heartbridge team members` shows it.
        device: String,
    },
    /// The team settings: show them, or change them (lead only).
    Settings(duty_cli::SettingsArgs),
    /// The relays this device knows: list, add, remove.
    #[command(subcommand)]
    Relays(relays_cli::RelaysCmd),
}

#[derive(Subcommand)]
enum HandbookCmd {
    /// Import Markdown files or folders of them; a changed file updates its handbook.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the handbooks on this device.
    List,
    /// Show a handbook's contents, or one section.
    Show {
        id: String,
        #[arg(long)]
        section: Option<usize>,
    },
    /// Search every handbook (Chinese or English; all terms must match).
    Search {
        query: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum CaseCmd {
    /// Open a new case.
    New {
        /// An alias; never a real name.
        #[arg(long)]
        alias: String,
        #[arg(long, default_value = "other")]
        group: Group,
        #[arg(long, default_value = "none")]
        risk: Risk,
    },
    /// Log a contact.
    Contact {
        case_id: String,
        #[arg(long)]
        channel: Channel,
        /// The note; `-` reads it from standard input.
        #[arg(long)]
        text: String,
        #[arg(long)]
        minutes: Option<i64>,
    },
    /// Rewrite a contact's note.
    EditContact {
        case_id: String,
        contact_id: String,
        /// The new note; `-` reads it from standard input.
        #[arg(long)]
        text: String,
    },
    /// Change risk, status, group or alias.
    Set {
        case_id: String,
        #[arg(long)]
        risk: Option<Risk>,
        #[arg(long)]
        status: Option<Status>,
        #[arg(long)]
        group: Option<Group>,
        #[arg(long)]
        alias: Option<String>,
    },
    /// Add a follow-up task.
    Followup {
        case_id: String,
        #[arg(long)]
        text: String,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
    },
    /// Mark a follow-up done.
    Done {
        case_id: String,
        followup_id: String,
        /// Mark it not done again.
        #[arg(long)]
        undo: bool,
    },
    /// Add or remove tags.
    Tag {
        case_id: String,
        #[arg(long)]
        add: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Show a case with its contacts and follow-ups.
    Show { case_id: String },
    /// List cases, highest risk first.
    List {
        #[arg(long)]
        risk: Option<Risk>,
        #[arg(long)]
        status: Option<Status>,
        #[arg(long)]
        group: Option<Group>,
    },
    /// Who changed what, when.
    History { case_id: String },
    #[command(flatten)]
    Supervision(supervision_cli::CaseCmd),
}

fn default_profile() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("heartbridge")
}

fn read_text(t: String) -> anyhow::Result<String> {
    if t == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s.trim_end_matches('\n').to_owned())
    } else {
        Ok(t)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.json);
    let code = match run(cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => out.error(&e),
    };
    out.finish(code)
}

fn run(cli: Cli, out: &Out) -> anyhow::Result<()> {
    let profile = cli.profile.clone().unwrap_or_else(default_profile);
    match cli.command {
        Command::Init { name, max_failed } => {
            let pass = passphrase(true)?;
            let protection = Protection::pin(pass.as_str()).with_max_failed(max_failed);
            let store = Store::init(&profile, &name, &protection)?;
            out.print(
                &json!({"profile": profile, "device_id": store.profile().device_id}),
                || {
                    format!(
                        "Profile created in {} (device {}).",
                        profile.display(),
                        store.profile().device_id
                    )
                },
            );
        }
        Command::Handbook(cmd) => handbook(cmd, &mut open(&profile)?, out)?,
        Command::Case(cmd) => case(cmd, &mut open(&profile)?, out)?,
        Command::Supervision(cmd) => supervision_cli::top(cmd, &mut open(&profile)?, out)?,
        Command::Team(TeamCmd::Claim {
            relay,
            token,
            name,
            pin,
        }) => {
            let pin = match pin.as_deref() {
                None => None,
                Some(p) => Some(heartbridge_core::proto::CertPin::parse(p).ok_or(
                    heartbridge_core::Error::InvalidValue {
                        field: "pin",
                        value: p.chars().take(60).collect(),
                        allowed: "sha256: and 43 characters, as `heartbridge-relay fingerprint` prints it",
                    },
                )?),
            };
            let mut store = open_or_init(&profile, name.as_deref())?;
            let team = BlockingTransport::new()?.claim_pinned(&mut store, &relay, &token, pin)?;
            out.print(
                &json!({"team_id": team.team_id.to_hex(), "device_id": team.device_id, "role": team.role}),
                || format!("You lead team {}. Invite devices with `heartbridge team invite`.", team.team_id),
            );
        }
        Command::Team(TeamCmd::Invite { role, hours }) => {
            let role: heartbridge_core::proto::Role =
                role.parse()
                    .map_err(|_| heartbridge_core::Error::InvalidValue {
                        field: "role",
                        value: role.chars().take(40).collect(),
                        allowed: "volunteer supervisor lead relay",
                    })?;
            let mut store = open(&profile)?;
            let (code, expires_at) = BlockingTransport::new()?.invite_card(
                &mut store,
                role,
                std::time::Duration::from_secs(hours.clamp(1, 24 * 30) * 3600),
            )?;
            let expires = heartbridge_core::format_ms(expires_at.saturating_mul(1000));
            out.print(&json!({"code": code, "role": role, "expires_at": expires}), || {
                if role.holds_team_key() {
                    format!("{code}\n\nThis code carries the team's current key: give it in person, never by an open channel. It works once, until {expires}.")
                } else {
                    format!("{code}\n\nA venue relay code: it carries no team key. Enroll the relay with `heartbridge-relay venue join --db PATH` (code on standard input). It works once, until {expires}.")
                }
            });
        }
        Command::Team(TeamCmd::Revoke { device }) => {
            let mut store = open(&profile)?;
            let (epoch, cutoff) = BlockingTransport::new()?.revoke(&mut store, &device)?;
            out.print(&json!({"device": device, "epoch": epoch, "cutoff_seq": cutoff}), || {
                format!("Device {device} is removed: the relay refuses it, and the team's new key (epoch {epoch}) goes to every other device at its next sync. The removed device erases its data if it syncs again.")
            });
        }
        Command::Team(TeamCmd::Relays(cmd)) => relays_cli::relays(cmd, &mut open(&profile)?, out)?,
        Command::Team(TeamCmd::Settings(args)) => {
            duty_cli::settings(args, &mut open(&profile)?, out)?
        }
        Command::Duty(cmd) => duty_cli::duty(cmd, &mut open(&profile)?, out)?,
        Command::Shift(cmd) => duty_cli::shift(cmd, &mut open(&profile)?, out)?,
        Command::Stats(args) => stats_cli::stats(args, &mut open(&profile)?, out)?,
        Command::Bundle(cmd) => bundle_cli::bundle(cmd, &mut open(&profile)?, out)?,
        Command::Lesson(cmd) => lesson_cli::lesson(cmd, &mut open(&profile)?, out, !cli.json)?,
        Command::Team(TeamCmd::Members) => {
            let store = open(&profile)?;
            let members = heartbridge_client::members(&store)?;
            out.print(&members, || output::members(&members));
        }
        Command::Join {
            code,
            code_file,
            name,
        } => {
            let code = match (code, code_file) {
                (Some(c), _) => Zeroizing::new(c),
                (None, Some(f)) => Zeroizing::new(std::fs::read_to_string(&f).map_err(|e| {
                    anyhow::anyhow!("cannot read the invite code from {}: {e}", f.display())
                })?),
                (None, None) => {
                    if std::io::stdin().is_terminal() {
                        eprintln!("Paste the invite code and press Enter:");
                    }
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    Zeroizing::new(line)
                }
            };
            let mut store = open_or_init(&profile, name.as_deref())?;
            let team = heartbridge_client::join(&mut store, &code)?;
            out.print(
                &json!({"team_id": team.team_id.to_hex(), "device_id": team.device_id, "role": team.role}),
                || format!("Joined team {} as {}. Run `heartbridge sync` to fetch the team's data.", team.team_id, team.role),
            );
        }
        Command::Sync {
            page_bytes,
            snapshot,
        } => {
            let mut store = open(&profile)?;
            let opts = SyncOptions {
                page_bytes,
                snapshot_all: snapshot,
                ..SyncOptions::default()
            };
            let human = !cli.json;
            let mut transport = BlockingTransport::default();
            // At a venue relay the device signs its requests instead of
            // showing its token.
            if let Ok((device, secret)) = store.request_signer() {
                transport.http().set_signer(&device, secret);
            }
            let report = store.sync(&mut transport, &opts, &mut |p| {
                if human {
                    eprintln!(
                        "sync: {} requests, {} sent, {} received, {} waiting",
                        p.requests, p.pushed, p.pulled, p.pending
                    );
                }
            })?;
            lesson_cli::push_after_sync(&mut store, human);
            out.print(&report, || output::sync(&report));
        }
        Command::Status => {
            let store = open(&profile)?;
            let status = store.sync_status()?;
            let team = store.team()?;
            let v = json!({
                "name": store.profile().name,
                "device_id": store.profile().device_id,
                "team": team.as_ref().map(|t| json!({"team_id": t.team_id.to_hex(), "relay": t.relay_url, "role": t.role, "epoch": t.epoch})),
                "sync": status,
            });
            out.print(&v, || output::status(&status, team.as_ref()));
        }
    }
    Ok(())
}

/// The profile's passphrase: `HEARTBRIDGE_PASSPHRASE`, else asked without
/// echo on a terminal (twice with `confirm`), else an error saying so.
fn passphrase(confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(v) = std::env::var_os("HEARTBRIDGE_PASSPHRASE") {
        let v = v
            .into_string()
            .map_err(|_| anyhow::anyhow!("HEARTBRIDGE_PASSPHRASE is not UTF-8 text"))?;
        return Ok(Zeroizing::new(v));
    }
    let missing = || {
        anyhow::anyhow!(
            "this profile needs its passphrase: set HEARTBRIDGE_PASSPHRASE, or run heartbridge in a terminal to be asked for it"
        )
    };
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(missing());
    }
    let first = Zeroizing::new(rpassword::prompt_password("Passphrase: ").map_err(|_| missing())?);
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Passphrase again: ").map_err(|_| missing())?,
        );
        if *again != *first {
            anyhow::bail!("the two passphrases differ: nothing was created; try again");
        }
    }
    Ok(first)
}

/// Opens the profile with its passphrase.
fn open(profile: &std::path::Path) -> anyhow::Result<Store> {
    Ok(Store::open(profile, &Unlock::Pin(passphrase(false)?))?)
}

fn open_or_init(profile: &std::path::Path, name: Option<&str>) -> anyhow::Result<Store> {
    let pass = passphrase(false)?;
    match Store::open(profile, &Unlock::Pin(pass.clone())) {
        Err(heartbridge_core::Error::ProfileMissing { .. }) if name.is_some() => Ok(Store::init(
            profile,
            name.unwrap_or_default(),
            &Protection::pin(pass.as_str()),
        )?),
        other => Ok(other?),
    }
}

fn handbook(cmd: HandbookCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    match cmd {
        HandbookCmd::Import { paths } => {
            let done = store.import_handbooks(&paths)?;
            out.print(&done, || output::imported(&done));
        }
        HandbookCmd::List => {
            let list = store.list_handbooks()?;
            out.print(&list, || output::handbooks(&list));
        }
        HandbookCmd::Show { id, section } => {
            let id = store.resolve(DocKind::Handbook, &id)?;
            match section {
                Some(n) => {
                    let s = store.section(&id, n)?;
                    out.print(&s, || format!("{}\n\n{}", s.title, s.body));
                }
                None => {
                    let h = store.handbook(&id)?;
                    out.print(&h, || output::handbook(&h));
                }
            }
        }
        HandbookCmd::Search { query, limit } => {
            let hits = store.search(&query, limit)?;
            out.print(&hits, || output::hits(&hits));
        }
    }
    Ok(())
}

fn case(cmd: CaseCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    let find = |store: &Store, id: &str| store.resolve(DocKind::Case, id);
    match cmd {
        CaseCmd::New { alias, group, risk } => {
            let id = store.new_case(&NewCase { alias, group, risk })?;
            out.print(&json!({"id": id}), || {
                format!("Case {id} opened. Saved on this device.")
            });
        }
        CaseCmd::Contact {
            case_id,
            channel,
            text,
            minutes,
        } => {
            let id = find(store, &case_id)?;
            let cid = store.add_contact(&id, channel, &read_text(text)?, minutes)?;
            out.print(&json!({"id": id, "contact_id": cid}), || {
                format!("Contact {cid} logged. Saved on this device.")
            });
        }
        CaseCmd::EditContact {
            case_id,
            contact_id,
            text,
        } => {
            let id = find(store, &case_id)?;
            let w = store.edit_contact(&id, &contact_id, &read_text(text)?)?;
            out.written(&id, &w);
        }
        CaseCmd::Set {
            case_id,
            risk,
            status,
            group,
            alias,
        } => {
            let id = find(store, &case_id)?;
            if risk.is_none() && status.is_none() && group.is_none() && alias.is_none() {
                anyhow::bail!(heartbridge_core::Error::Empty {
                    what: "the change (give --risk, --status, --group or --alias)"
                });
            }
            let w = store.update_case(
                &id,
                &CaseUpdate {
                    alias,
                    risk,
                    status,
                    group,
                },
            )?;
            out.written(&id, &w);
        }
        CaseCmd::Followup { case_id, text, due } => {
            let id = find(store, &case_id)?;
            let fid = store.add_followup(&id, &read_text(text)?, due.as_deref())?;
            out.print(&json!({"id": id, "followup_id": fid}), || {
                format!("Follow-up {fid} added.")
            });
        }
        CaseCmd::Done {
            case_id,
            followup_id,
            undo,
        } => {
            let id = find(store, &case_id)?;
            let w = store.set_followup_done(&id, &followup_id, !undo)?;
            out.written(&id, &w);
        }
        CaseCmd::Tag {
            case_id,
            add,
            remove,
        } => {
            let id = find(store, &case_id)?;
            let w = store.tag_case(&id, &add, &remove)?;
            out.written(&id, &w);
        }
        CaseCmd::Show { case_id } => {
            let c = store.case(&find(store, &case_id)?)?;
            out.print(&c, || output::case(&c));
        }
        CaseCmd::List {
            risk,
            status,
            group,
        } => {
            let list = store.list_cases(&CaseFilter {
                risk,
                status,
                group,
            })?;
            out.print(&list, || output::cases(&list));
        }
        CaseCmd::History { case_id } => {
            let h = store.case_history(&find(store, &case_id)?)?;
            out.print(&h, || output::history(&h));
        }
        CaseCmd::Supervision(cmd) => supervision_cli::case(cmd, store, out)?,
    }
    Ok(())
}
