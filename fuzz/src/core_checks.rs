//! What the fuzz targets of `heartbridge-core` check on one input.
//!
//! Shared, by path, between the fuzz targets (`fuzz/fuzz_targets/*.rs`) and
//! the replay test `crates/core/tests/fuzz_fixtures.rs`, so a corpus or crash
//! file runs through exactly the same code in `cargo test` as in the fuzzer.
//! Each check must return normally for every input; a panic is a finding.

use std::path::{Path, PathBuf};

use heartbridge_core::docs::{parse_handbook, split_sections};
use heartbridge_core::{Channel, DocId, DocKind, Group, NewCase, Risk, Store, DB_FILE};
use tempfile::TempDir;

fn check_sections(sections: &[heartbridge_core::Section]) {
    for (i, s) in sections.iter().enumerate() {
        assert_eq!(s.index, i, "sections are numbered in order");
        assert!(s.level <= 6, "a heading has at most six #");
        assert!(s.level > 0 || i == 0, "only the intro has no heading");
        assert_eq!(s.body, s.body.trim(), "section bodies are trimmed");
        assert_eq!(s.title, s.title.trim(), "section titles are trimmed");
    }
}

/// Target `handbook`: bytes as a handbook file being imported (front matter
/// and Markdown sections), and any text split into sections.
pub fn handbook(data: &[u8]) {
    if let Ok(src) = parse_handbook(Path::new("fuzz.md"), data) {
        assert!(!src.body.trim().is_empty(), "an imported handbook has text");
        assert!(!src.version.is_empty(), "a handbook has a version");
        assert!(!src.language.is_empty(), "a handbook has a language");
        check_sections(&split_sections(&src.body, ""));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_sections(&split_sections(text, "Intro"));
    }
}

/// What [`ApplyHarness::run`] applies the bytes to, by the input's first byte.
fn target(sel: u8, case: &DocId, handbook: &DocId) -> (DocId, DocKind) {
    let fresh = || DocId::parse("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0", "document").expect("an id");
    match sel % 5 {
        0 => (case.clone(), DocKind::Case),
        1 => (handbook.clone(), DocKind::Handbook),
        2 => (fresh(), DocKind::Case),
        3 => (fresh(), DocKind::Handbook),
        _ => (fresh(), DocKind::ShiftReport),
    }
}

/// Target `apply_remote`: bytes as the plaintext of a pulled envelope,
/// merged with `Store::apply_remote` into a real SQLite profile on disk that
/// holds a case and a handbook. The first byte picks the document (the case,
/// the handbook, or a new case, handbook or shift report); the rest are the
/// Automerge bytes.
///
/// After every input the database passes `PRAGMA integrity_check` and the
/// documents still load and read. An input that changed the store is
/// checked once more by opening the profile afresh, then the database file
/// is put back as it was, so every input starts from the same store.
pub struct ApplyHarness {
    _dir: TempDir,
    profile: PathBuf,
    pristine: Vec<u8>,
    store: Option<Store>,
    check: Option<rusqlite::Connection>,
    case: DocId,
    handbook: DocId,
}

/// A seed document: the case and handbook of the store, as Automerge bytes.
pub struct SeedDocs {
    /// Every change the store made, in order, as (document, kind, bytes).
    pub changes: Vec<(DocId, DocKind, Vec<u8>)>,
    /// Whole saved documents, the case first.
    pub saved: Vec<(DocId, DocKind, Vec<u8>)>,
}

fn build_profile(profile: &Path) -> (Store, DocId, DocId) {
    let mut store = Store::init(
        profile,
        "Fuzz volunteer",
        &heartbridge_core::testing::protection(),
    )
    .expect("a new profile");
    let case = store
        .new_case(&NewCase {
            alias: "Case A".into(),
            group: Group::ExamStress,
            risk: Risk::Low,
        })
        .expect("a new case");
    store
        .add_contact(&case, Channel::Hotline, "first call", Some(20))
        .expect("a contact");
    let imported = store
        .import_handbook_bytes(&[(
            PathBuf::from("rules.md"),
            b"---\ntitle: Rules\nslug: rules\n---\n# One\ntext\n## Two\nmore text\n".to_vec(),
        )])
        .expect("a handbook");
    let handbook = DocId::parse(&imported[0].id, "handbook").expect("a handbook id");
    (store, case, handbook)
}

impl ApplyHarness {
    pub fn new() -> ApplyHarness {
        let dir = tempfile::tempdir().expect("a temp dir");
        let profile = dir.path().join("profile");
        let (store, case, handbook) = build_profile(&profile);
        // Closing the only connection checkpoints the WAL into the file.
        drop(store);
        let pristine = std::fs::read(profile.join(DB_FILE)).expect("the database file");
        let mut h = ApplyHarness {
            _dir: dir,
            profile,
            pristine,
            store: None,
            check: None,
            case,
            handbook,
        };
        h.reopen();
        h
    }

    /// Real Automerge bytes from a store like the harness's: seeds.
    pub fn seed_docs() -> SeedDocs {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (mut store, case, handbook) = build_profile(&dir.path().join("profile"));
        store
            .add_contact(&case, Channel::Hotline, "second call", None)
            .expect("a contact");
        store
            .add_followup(&case, "call back", None)
            .expect("a follow-up");
        let changes = store
            .outbox()
            .expect("the outbox")
            .into_iter()
            .map(|o| (o.doc_id, o.kind, o.bytes))
            .collect();
        let saved = [case, handbook]
            .into_iter()
            .map(|id| {
                let (kind, mut doc) = store.load(&id).expect("load").expect("the document");
                (id, kind, doc.save())
            })
            .collect();
        SeedDocs { changes, saved }
    }

    fn reopen(&mut self) {
        let store = Store::open(&self.profile, &heartbridge_core::testing::unlock())
            .expect("the profile opens");
        self.check = Some(
            heartbridge_core::testing::open_raw(
                &self.profile,
                &heartbridge_core::testing::unlock(),
            )
            .expect("a keyed connection for checks"),
        );
        self.store = Some(store);
    }

    fn restore(&mut self) {
        self.check = None;
        self.store = None;
        let db = self.profile.join(DB_FILE);
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::write(&db, &self.pristine).expect("restore the database file");
        self.reopen();
    }

    fn assert_sound(&self, store: &Store) {
        let check: String = self
            .check
            .as_ref()
            .expect("the read connection")
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check runs");
        assert_eq!(check, "ok", "the database is damaged");
        store.case(&self.case).expect("the case still reads");
        store
            .handbook(&self.handbook)
            .expect("the handbook still reads");
    }

    /// Applies one input; panics if the store panicked or was damaged.
    /// After every input the database passes `integrity_check`, the case and
    /// handbook still read, and the profile opens afresh with `Store::open`.
    pub fn run(&mut self, data: &[u8]) {
        let Some((&sel, bytes)) = data.split_first() else {
            return;
        };
        let (id, kind) = target(sel, &self.case, &self.handbook);
        let store = self.store.as_mut().expect("the store is open");
        let changed = store.apply_remote(&id, kind, bytes);
        let store = self.store.as_ref().expect("the store is open");
        self.assert_sound(store);
        // The profile opens afresh, as the app would open it next time.
        drop(
            Store::open(&self.profile, &heartbridge_core::testing::unlock())
                .expect("the profile still opens"),
        );
        // An error or no change left the store as it was: nothing to undo.
        if let Ok(true) = changed {
            let (k, _) = store
                .load(&id)
                .expect("an applied document loads")
                .expect("an applied document is stored");
            assert_eq!(k, kind, "the document kept its kind");
            match kind {
                DocKind::Case => drop(store.case(&id).expect("an applied case reads")),
                DocKind::Handbook => drop(store.handbook(&id).expect("an applied handbook reads")),
                _ => {}
            }
            store
                .list_cases(&Default::default())
                .expect("the cases list");
            self.restore();
        }
    }
}

impl Default for ApplyHarness {
    fn default() -> Self {
        ApplyHarness::new()
    }
}
