//! How results and errors are printed: JSON for scripts, plain text for
//! people. Errors never echo note text: core errors carry none.

use std::cell::Cell;
use std::fmt::Write;
use std::io::Write as _;
use std::process::ExitCode;

use heartbridge_core::{
    Case, CaseSummary, DocId, Handbook, HandbookSummary, HistoryEntry, Hit, Imported, SyncReport,
    SyncStatus, Team, Written,
};
use serde::Serialize;

pub struct Out {
    pub json: bool,
    /// Whoever read stdout has gone (`| head`): print nothing more, and end
    /// quietly.
    closed: Cell<bool>,
    /// Writing stdout failed otherwise (a full disk): end with an error.
    failed: Cell<bool>,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            closed: Cell::new(false),
            failed: Cell::new(false),
        }
    }

    pub fn print<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.closed.get() {
            return;
        }
        let text = if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => s,
                Err(e) => {
                    self.failed.set(true);
                    err_line(&format!("error: cannot write JSON: {e}"));
                    return;
                }
            }
        } else {
            human()
        };
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.closed.set(true);
            } else {
                self.failed.set(true);
                err_line(&format!("error: cannot write the output: {e}"));
            }
        }
    }

    /// The exit code, given the command's: a closed stdout ends a
    /// successful command quietly with 0; a failed write is an error.
    pub fn finish(&self, code: ExitCode) -> ExitCode {
        if code == ExitCode::SUCCESS && self.failed.get() {
            ExitCode::FAILURE
        } else {
            code
        }
    }

    pub fn written(&self, id: &DocId, w: &Written) {
        let changed = matches!(w, Written::Changed(_));
        self.print(&serde_json::json!({"id": id, "changed": changed}), || {
            if changed {
                "Saved on this device.".to_owned()
            } else {
                "Nothing to change: the case already says that.".to_owned()
            }
        });
    }

    pub fn error(&self, e: &anyhow::Error) -> ExitCode {
        let (kind, code) = match e.downcast_ref::<heartbridge_core::Error>() {
            Some(core) => {
                let code = match core.kind() {
                    "invalid_input" => 2,
                    "not_found" => 3,
                    "profile_missing" | "profile_foreign" | "profile_exists" | "schema_too_new" => {
                        4
                    }
                    "database_corrupt" => 5,
                    "handbook_format" => 6,
                    "wrong_pin" | "pin_required" | "wrong_key" => 7,
                    "device_revoked" => 8,
                    "erased" => 9,
                    _ => 1,
                };
                (core.kind(), code)
            }
            None => ("error", 1),
        };
        if self.json {
            err_line(&serde_json::json!({"error": kind, "message": e.to_string()}).to_string());
        } else {
            err_line(&format!("error: {e}"));
        }
        ExitCode::from(code)
    }
}

/// One line on stderr; if stderr is closed too there is no one to tell.
fn err_line(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

fn strip_marks(s: &str) -> String {
    s.replace("<mark>", "\x1b[1m")
        .replace("</mark>", "\x1b[0m")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

pub fn imported(list: &[Imported]) -> String {
    let mut s = String::new();
    for i in list {
        let _ = writeln!(
            s,
            "{:9} {}  {}  ({})",
            i.outcome,
            &i.id[..8],
            i.title,
            i.path.display()
        );
    }
    s.trim_end().to_owned()
}

pub fn handbooks(list: &[HandbookSummary]) -> String {
    if list.is_empty() {
        return "No handbooks yet: import some with `heartbridge handbook import DIR`.".into();
    }
    let mut s = String::new();
    for h in list {
        let _ = writeln!(
            s,
            "{}  {}  [{} v{}, {} sections]",
            &h.id[..8],
            h.title,
            h.language,
            h.version,
            h.sections
        );
    }
    s.trim_end().to_owned()
}

pub fn handbook(h: &Handbook) -> String {
    let mut s = format!("{}  ({} v{})\n", h.title, h.language, h.version);
    for sec in &h.sections {
        let indent = "  ".repeat(usize::from(sec.level.saturating_sub(1)));
        let _ = writeln!(s, "{:>3}  {indent}{}", sec.index, sec.title);
    }
    s.push_str("\nRead a section with --section N.");
    s
}

pub fn hits(hits: &[Hit]) -> String {
    if hits.is_empty() {
        return "No section matches.".into();
    }
    let mut s = String::new();
    for h in hits {
        let _ = writeln!(
            s,
            "{} › {}  [{} --section {}]\n    {}\n",
            h.handbook_title,
            h.section_title,
            &h.handbook_id[..8],
            h.section,
            strip_marks(&h.snippet)
        );
    }
    s.trim_end().to_owned()
}

pub fn case(c: &Case) -> String {
    let mut s = format!(
        "{}  {}\n  group {}, risk {}{}, status {}\n",
        c.alias,
        c.id,
        c.group,
        c.risk,
        if c.risk_conflict {
            " (devices disagreed; highest shown)"
        } else {
            ""
        },
        c.status
    );
    if !c.tags.is_empty() {
        let _ = writeln!(s, "  tags: {}", c.tags.join(", "));
    }
    s.push_str(&crate::supervision_cli::case_lines(c));
    for ct in &c.contacts {
        let mins = ct.minutes.map(|m| format!(", {m} min")).unwrap_or_default();
        let _ = writeln!(
            s,
            "\n  {} {}{} by {} [{}]\n    {}",
            ct.at, ct.channel, mins, ct.author, ct.id, ct.text
        );
    }
    for f in &c.followups {
        let due = f
            .due
            .as_deref()
            .map(|d| format!(" (due {d})"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  [{}] {}{} [{}]",
            if f.done { "x" } else { " " },
            f.text,
            due,
            f.id
        );
    }
    s.trim_end().to_owned()
}

pub fn cases(list: &[CaseSummary]) -> String {
    if list.is_empty() {
        return "No cases.".into();
    }
    let mut s = String::new();
    for c in list {
        let _ = writeln!(
            s,
            "{}  {:8} {:8} {:15} {}  ({} contacts){}",
            &c.id[..8],
            c.risk,
            c.status,
            c.group,
            c.alias,
            c.contacts,
            if c.awaiting_receipt {
                "  [not yet confirmed by a supervisor]"
            } else {
                ""
            }
        );
    }
    s.trim_end().to_owned()
}

pub fn history(h: &[HistoryEntry]) -> String {
    let mut s = String::new();
    for e in h {
        let _ = writeln!(s, "{}  {}  {}", e.at, e.author, e.what);
    }
    s.trim_end().to_owned()
}

pub fn members(list: &[heartbridge_client::MemberView]) -> String {
    let mut s = String::new();
    for m in list {
        let last = m
            .last_sync_at
            .map(|t| heartbridge_core::format_ms(t * 1000))
            .unwrap_or_else(|| "never synced".into());
        let _ = writeln!(
            s,
            "{}  {:10} {}  last sync {}{}{}",
            &m.device_id[..8.min(m.device_id.len())],
            m.role,
            m.name.as_deref().unwrap_or("(name unreadable)"),
            last,
            if m.revoked { "  REVOKED" } else { "" },
            if m.this_device { "  (this device)" } else { "" }
        );
    }
    s.trim_end().to_owned()
}

pub fn sync(r: &SyncReport) -> String {
    let mut s = format!(
        "Synced: {} change(s) delivered, {} received ({} applied) in {} request(s), {} bytes sent, {} bytes received.",
        r.changes_delivered, r.pulled, r.applied, r.requests, r.bytes_sent, r.bytes_received
    );
    if r.relay_restored {
        let _ = write!(s, "\nThe relay was restored from a backup (its log changed): everything was pulled again, and {} document(s) this device holds were sent again so that nothing is missing there.", r.documents_resent);
    }
    if r.refused > 0 {
        let _ = write!(s, "\n{} envelope(s) from the relay did not open with this team's key and were set aside, not applied.", r.refused);
    }
    if r.carried_refused > 0 {
        let _ = write!(s, "\n{} envelope(s) you carried for teammates (from a bundle) were refused by the central relay (their author was removed, is unknown there, or they were altered): they are kept sealed on this device and not sent again; tell your team's lead.", r.carried_refused);
    }
    if r.venue_acked > 0 || r.central_confirmed > 0 {
        let _ = write!(
            s,
            "\nVenue relay: {} envelope(s) now held there (level 1), {} confirmed at the central relay (level 2).",
            r.venue_acked, r.central_confirmed
        );
    }
    if r.pending > 0 {
        let _ = write!(
            s,
            "\n{} change(s) still wait: they are saved on this device; sync again.",
            r.pending
        );
    }
    s
}

pub fn status(st: &SyncStatus, team: Option<&Team>) -> String {
    let mut s = match team {
        Some(t) => format!("Team {} via {} as {}.\n", t.team_id, t.relay_url, t.role),
        None => "Not in a team yet: everything stays on this device.\n".to_owned(),
    };
    let _ = writeln!(
        s,
        "Last synced: {}",
        st.last_synced_at.as_deref().unwrap_or("never")
    );
    let _ = writeln!(s, "Changes waiting: {}", st.pending);
    if st.at_venue > 0 {
        // 在会场中继 N 条 · 已到中心: the rest of what left this device.
        let _ = writeln!(
            s,
            "Of them at a venue relay, not yet confirmed at the central relay: {} (they leave this device once the central relay has them)",
            st.at_venue
        );
    }
    if st.waiting > 0 {
        let _ = writeln!(
            s,
            "Changes from teammates waiting for earlier ones: {} (they apply when those arrive)",
            st.waiting
        );
    }
    if st.held > 0 {
        let _ = writeln!(
            s,
            "Envelopes from teammates this device cannot check yet: {} (kept; they apply once the team's lead confirms their author or key)",
            st.held
        );
    }
    if st.locked > 0 {
        let _ = writeln!(
            s,
            "Changes of cases not shared with this device: {} (kept sealed; they open if a supervisor assigns you the case)",
            st.locked
        );
    }
    if st.carried_refused > 0 {
        let _ = writeln!(
            s,
            "Envelopes carried for teammates that the central relay refused: {} (kept sealed here, not sent again; tell your team's lead)",
            st.carried_refused
        );
    }
    if st.stopped {
        let _ = writeln!(
            s,
            "Sync is stopped: the relay says this device was removed from the team. Your notes stay here; ask your team's lead."
        );
    }
    if st.refused > 0 {
        let reasons: Vec<String> = st
            .refused_by_reason
            .iter()
            .map(|r| format!("{} {}", r.reason, r.count))
            .collect();
        let _ = writeln!(
            s,
            "Envelopes refused: {} ({}); they were never applied",
            st.refused,
            reasons.join(", ")
        );
    }
    if let Some(e) = &st.last_error {
        let _ = writeln!(s, "Last error: {e}");
    }
    s.trim_end().to_owned()
}
