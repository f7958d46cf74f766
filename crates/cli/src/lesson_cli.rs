//! `heartbridge lesson`: micro-lessons a handbook carries (issue 10 item
//! 7). `add` seals a media file into chunks and names it in the handbook
//! (it syncs with it; the chunks go to the relay with `push` or the next
//! `sync`); `fetch` brings what is missing — from a venue relay freely,
//! over any other link only when confirmed (`--yes-metered`) or when the
//! link was said to be unmetered (`link unmetered`); `list` shows what is
//! on this device; `watched` counts a viewing for the statistics.

use std::path::PathBuf;

use clap::Subcommand;
use heartbridge_client::BlockingTransport;
use heartbridge_core::{DocKind, FetchReport, LessonInfo, LinkPolicy, Store};
use serde_json::json;

use crate::output::Out;

#[derive(Subcommand)]
pub enum LessonCmd {
    /// Add a media file (audio or video) to a handbook as a lesson.
    Add {
        /// The handbook (its id, or the start of it).
        #[arg(long)]
        handbook: String,
        /// The lesson's title.
        #[arg(long)]
        title: String,
        /// The media type (default: from the file's extension).
        #[arg(long)]
        mime: Option<String>,
        /// How long it plays, in seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// The media file.
        file: PathBuf,
    },
    /// The lessons, with their size and how much of each is on this device.
    List {
        /// Only this handbook's.
        #[arg(long)]
        handbook: Option<String>,
    },
    /// Upload the chunks of lessons added on this device to the team's relay.
    Push,
    /// Fetch the missing chunks of these lessons (all when none given).
    Fetch {
        ids: Vec<String>,
        /// Fetch even over a link that may be metered (the size is shown first without it).
        #[arg(long)]
        yes_metered: bool,
        /// Only from this relay (one of `heartbridge team relays list`).
        #[arg(long)]
        relay: Option<String>,
    },
    /// Write a lesson, decrypted, to FILE (a copy for you; the profile keeps it sealed).
    Export { id: String, file: PathBuf },
    /// Keep where you stopped in a lesson.
    Progress {
        id: String,
        /// Position, in seconds.
        #[arg(long)]
        at: f64,
    },
    /// Count one viewing of a lesson (one 人次 in the team's statistics).
    Watched { id: String },
    /// Show or set whether fetching outside a venue relay asks first.
    Link {
        /// `ask` (the default: the link may be metered) or `unmetered`.
        policy: Option<String>,
    },
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

fn transport(store: &Store) -> anyhow::Result<BlockingTransport> {
    let t = BlockingTransport::new()?;
    if let Ok((device, secret)) = store.request_signer() {
        t.http().set_signer(&device, secret);
    }
    Ok(t)
}

fn info_text(l: &LessonInfo) -> String {
    let dur = l
        .duration_ms
        .map(|d| format!(" · {}:{:02}", d / 60_000, (d / 1000) % 60))
        .unwrap_or_default();
    let here = if l.held {
        "on this device".to_owned()
    } else {
        format!(
            "{} of {} here ({}/{} chunks)",
            mb(l.bytes_held),
            mb(l.size),
            l.chunks_held,
            l.chunks
        )
    };
    let watched = if l.watched_count > 0 {
        format!(" · watched {}×", l.watched_count)
    } else {
        String::new()
    };
    format!(
        "{}  {}  {} · {}{dur} · {here}{watched}",
        l.id,
        l.title,
        l.mime,
        mb(l.size)
    )
}

fn fetched_text(r: &FetchReport) -> String {
    format!(
        "Fetched {} chunk(s) ({}) of {} lesson(s); {} chunk(s) were already here.{}",
        r.chunks_fetched,
        mb(r.bytes_fetched),
        r.lessons,
        r.chunks_already_held,
        if r.complete {
            " Everything plays offline."
        } else {
            ""
        }
    )
}

/// Uploads pending chunks after a sync; says what it did on stderr.
pub fn push_after_sync(store: &mut Store, human: bool) {
    if store
        .lesson_pending_uploads()
        .map(|p| p.is_empty())
        .unwrap_or(true)
    {
        return;
    }
    let sent = transport(store)
        .map_err(|e| e.to_string())
        .and_then(|mut t| store.lesson_push(&mut t).map_err(|e| e.to_string()));
    if human {
        match sent {
            Ok(n) => eprintln!("lessons: {n} chunk(s) uploaded"),
            Err(e) => eprintln!("lessons: not uploaded yet ({e})"),
        }
    }
}

pub fn lesson(cmd: LessonCmd, store: &mut Store, out: &Out, human: bool) -> anyhow::Result<()> {
    match cmd {
        LessonCmd::Add {
            handbook,
            title,
            mime,
            duration,
            file,
        } => {
            let hb = store.resolve(DocKind::Handbook, &handbook)?;
            let duration_ms = duration.map(|s| (s.max(0.0) * 1000.0).round() as u64);
            let l = store.lesson_add(&hb, &file, &title, mime.as_deref(), duration_ms)?;
            out.print(&l, || {
                format!(
                    "Added lesson {} ({}, {} chunk(s)) to handbook {hb}. It reaches the team with the next sync.",
                    l.id,
                    mb(l.size),
                    l.chunks
                )
            });
        }
        LessonCmd::List { handbook } => {
            let hb = match handbook {
                Some(h) => Some(store.resolve(DocKind::Handbook, &h)?),
                None => None,
            };
            let list = store.lessons(hb.as_ref())?;
            out.print(&list, || {
                if list.is_empty() {
                    "No lessons.".to_owned()
                } else {
                    list.iter().map(info_text).collect::<Vec<_>>().join("\n")
                }
            });
        }
        LessonCmd::Push => {
            let mut t = transport(store)?;
            let n = store.lesson_push(&mut t)?;
            out.print(&json!({ "uploaded": n }), || {
                format!("{n} chunk(s) uploaded.")
            });
        }
        LessonCmd::Fetch {
            ids,
            yes_metered,
            relay,
        } => {
            let mut t = transport(store)?;
            let report =
                store.lesson_fetch(&mut t, &ids, yes_metered, relay.as_deref(), &mut |r| {
                    if human {
                        eprintln!(
                            "lesson fetch: {} chunk(s), {}",
                            r.chunks_fetched,
                            mb(r.bytes_fetched)
                        );
                    }
                })?;
            out.print(&report, || fetched_text(&report));
        }
        LessonCmd::Export { id, file } => {
            let n = store.lesson_export(&id, &file)?;
            out.print(
                &json!({ "file": file.display().to_string(), "bytes": n }),
                || format!("Wrote {} to {}.", mb(n), file.display()),
            );
        }
        LessonCmd::Progress { id, at } => {
            let ms = (at.max(0.0) * 1000.0).round() as u64;
            store.lesson_set_progress(&id, ms)?;
            out.print(&json!({ "lesson": id, "position_ms": ms }), || {
                "Kept.".to_owned()
            });
        }
        LessonCmd::Watched { id } => {
            let n = store.lesson_watched(&id)?;
            out.print(&json!({ "lesson": id, "watched_count": n }), || {
                format!("Counted. Watched {n}× on this device.")
            });
        }
        LessonCmd::Link { policy } => {
            if let Some(p) = policy {
                store.set_lesson_link_policy(LinkPolicy::parse(&p)?)?;
            }
            let p = store.lesson_link_policy()?;
            out.print(&json!({ "link": p }), || match p {
                LinkPolicy::Ask => "ask: fetching outside a venue relay needs --yes-metered (the size is shown first)".to_owned(),
                LinkPolicy::Unmetered => "unmetered: lessons are fetched without asking".to_owned(),
            });
        }
    }
    Ok(())
}
