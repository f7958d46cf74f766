//! The encryption of an old plaintext profile, killed with SIGKILL at
//! random instants: the next command always finds a working profile with
//! every note, encrypted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heartbridge_core::testing::TEST_PIN;
use heartbridge_core::{Channel, DocKind, Group, NewCase, Risk, Store, Unlock, DB_FILE, KEYS_FILE};

fn cli(profile: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heartbridge"));
    c.arg("--profile")
        .arg(profile)
        .args(["--json", "case", "list"])
        .env_remove("HEARTBRIDGE_PROFILE")
        .env("HEARTBRIDGE_PASSPHRASE", TEST_PIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn is_plain(p: &Path) -> bool {
    std::fs::read(p.join(DB_FILE))
        .map(|b| b.starts_with(b"SQLite format 3\0"))
        .unwrap_or(false)
}

#[test]
fn an_encryption_killed_at_any_instant_leaves_a_working_profile_with_every_note() {
    let dir = tempfile::tempdir().expect("tmp");
    let template = dir.path().join("template");
    let mut s = heartbridge_core::testing::init_plaintext(&template, "老志愿者").expect("init");
    let notes: Vec<(String, String)> = (0..8)
        .map(|i| {
            let id = s
                .new_case(&NewCase {
                    alias: format!("个案{i}"),
                    group: Group::Migrant,
                    risk: Risk::Medium,
                })
                .expect("case");
            let text = format!(
                "第{i}条：{}",
                "家里争吵后情绪低落，约好下周再聊。".repeat(20)
            );
            s.add_contact(&id, Channel::Online, &text, Some(30))
                .expect("contact");
            (id.to_string(), text)
        })
        .collect();
    drop(s);
    assert!(is_plain(&template));

    // How long a whole encrypting command takes here, to spread the kills.
    let timing = dir.path().join("timing");
    copy_dir(&template, &timing);
    let start = Instant::now();
    let out = cli(&timing).output().expect("run");
    let whole = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_plain(&timing));

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}, a whole run {whole:?}");
    let (mut untouched, mut exporting, mut midway, mut done) = (0, 0, 0, 0);
    let rounds = 80;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let p = dir.path().join(format!("r{round}"));
        copy_dir(&template, &p);
        let mut child = cli(&p).spawn().expect("spawn");
        // The kill instant is the test's input: anywhere in a whole run.
        // Half the rounds anywhere in it, half in its last third, where the
        // encryption itself runs (the start is the process starting).
        let span = (whole.as_nanos() as u64).max(3);
        let delay = Duration::from_nanos(if round % 2 == 0 {
            seed % span
        } else {
            span * 2 / 3 + seed % (span / 3 + span / 10)
        });
        #[expect(
            clippy::disallowed_methods,
            reason = "not a wait for a server: the random instant the kill falls on"
        )]
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let copying = std::fs::read_dir(&p).expect("dir").any(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .contains(".enc-")
        });
        match (is_plain(&p), p.join(KEYS_FILE).exists()) {
            (true, false) if copying => exporting += 1,
            (true, false) => untouched += 1,
            (true, true) => midway += 1,
            (false, _) => done += 1,
        }

        // The next command: a working profile, encrypted, every note.
        let out = cli(&p).output().expect("run");
        assert!(
            out.status.success(),
            "round {round} (killed after {delay:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(
            list.as_array().expect("list").len(),
            notes.len(),
            "round {round}"
        );
        assert!(!is_plain(&p), "round {round}: still plaintext");
        let store = Store::open(&p, &Unlock::pin(TEST_PIN)).expect("open");
        for (id, text) in &notes {
            let id = store.resolve(DocKind::Case, id).expect("case id");
            assert_eq!(
                &store.case(&id).expect("case").contacts[0].text,
                text,
                "round {round}"
            );
        }
        drop(store);
        let names: Vec<String> = std::fs::read_dir(&p)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains(".enc-")),
            "round {round}: a half-made copy is left: {names:?}"
        );
        std::fs::remove_dir_all(&p).expect("clean up");
    }
    eprintln!(
        "killed: before the copy {untouched}, during the copy {exporting}, with keys beside the plaintext {midway}, after the swap {done}"
    );
    assert!(
        untouched + exporting + midway > 0,
        "no kill landed before the encryption finished"
    );
}
