//! Devices converge through a real relay on loopback, and the relay never
//! holds plaintext.

use heartbridge_core::proto::Role;
use heartbridge_core::{CaseUpdate, Channel, DocKind, Group, NewCase, Risk, Status, SyncOptions};
use heartbridge_tests::{sync_until_quiet, team, team_with, Device, Relay};
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn open_case(d: &mut Device, risk: Risk) -> heartbridge_core::DocId {
    d.store
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk,
        })
        .expect("new case")
}

#[test]
fn three_offline_devices_converge_in_any_sync_order() {
    for seed in 0..4u64 {
        let relay = Relay::start();
        let mut devs = team(&relay, &["lead", "volunteer", "supervisor"]);
        let id = open_case(&mut devs[0], Risk::Medium);
        let contact = devs[0]
            .store
            .add_contact(&id, Channel::Hotline, "第一次来电，谈到学校。", Some(20))
            .expect("contact");
        sync_until_quiet(&mut devs, &[0, 1, 2]);
        assert_eq!(devs[2].case(&id).contacts.len(), 1);

        // Offline: everyone edits the same case.
        let s = &mut devs[0].store;
        s.update_case(
            &id,
            &CaseUpdate {
                risk: Some(Risk::High),
                ..Default::default()
            },
        )
        .expect("raise");
        s.add_contact(&id, Channel::InPerson, "面谈，情绪低落", Some(40))
            .expect("contact a");
        s.edit_contact(&id, &contact, "第一次来电，谈到学校和室友。")
            .expect("edit a");
        let s = &mut devs[1].store;
        s.update_case(
            &id,
            &CaseUpdate {
                risk: Some(Risk::Low),
                ..Default::default()
            },
        )
        .expect("lower");
        s.add_contact(&id, Channel::Online, "线上留言", None)
            .expect("contact b");
        s.edit_contact(&id, &contact, "晚上，第一次来电，谈到学校。")
            .expect("edit b");
        let s = &mut devs[2].store;
        s.update_case(
            &id,
            &CaseUpdate {
                status: Some(Status::Referred),
                risk: Some(Risk::None),
                ..Default::default()
            },
        )
        .expect("status");
        s.add_contact(&id, Channel::Hotline, "转介到学校心理老师", Some(10))
            .expect("contact c");

        let mut order = vec![0, 1, 2];
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        sync_until_quiet(&mut devs, &order);

        let cases: Vec<_> = devs.iter().map(|d| d.case(&id)).collect();
        assert_eq!(cases[0], cases[1], "seed {seed}: lead and volunteer differ");
        assert_eq!(
            cases[1], cases[2],
            "seed {seed}: volunteer and supervisor differ"
        );
        let c = &cases[0];
        assert_eq!(c.risk, Risk::High, "seed {seed}: a merge lowered the risk");
        assert_eq!(c.status, Status::Referred);
        assert_eq!(
            c.contacts.len(),
            4,
            "seed {seed}: a concurrent contact was lost"
        );
        let first = c
            .contacts
            .iter()
            .find(|x| x.id == contact)
            .expect("first contact");
        assert_eq!(
            first.text, "晚上，第一次来电，谈到学校和室友。",
            "seed {seed}"
        );
        // Lists agree too.
        for d in &devs {
            let list = d.store.list_cases(&Default::default()).expect("list");
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].risk, Risk::High);
        }
        for d in &devs {
            assert_eq!(d.store.outbox_len().expect("outbox"), 0);
        }
    }
}

#[test]
fn the_relay_never_holds_plaintext() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["林老师", "王同学"]);
    let marker = "CANARY-7f3a9c-心桥测试标记";
    let id = devs[0]
        .store
        .new_case(&NewCase {
            alias: format!("{marker}-alias"),
            group: Group::Hardship,
            risk: Risk::High,
        })
        .expect("case");
    devs[0]
        .store
        .add_contact(
            &id,
            Channel::Hotline,
            &format!("笔记 {marker} 笔记"),
            Some(5),
        )
        .expect("contact");
    let dir = tempfile::tempdir().expect("tmp");
    let hb = dir.path().join("canary.md");
    std::fs::write(
        &hb,
        format!("---\ntitle: {marker}\nslug: canary\n---\n## 一\n{marker} 正文\n"),
    )
    .expect("write");
    devs[0].store.import_handbooks(&[hb]).expect("import");
    sync_until_quiet(&mut devs, &[0, 1]);
    devs[1]
        .store
        .add_contact(&id, Channel::Online, &format!("回复 {marker}"), None)
        .expect("reply");
    sync_until_quiet(&mut devs, &[1, 0]);
    devs[0]
        .sync_with(
            &mut heartbridge_client::BlockingTransport::default(),
            &SyncOptions {
                snapshot_all: true,
                ..Default::default()
            },
        )
        .expect("snapshot sync");
    assert!(
        devs[1]
            .case(&id)
            .contacts
            .iter()
            .any(|c| c.text.contains(marker)),
        "the note did not arrive"
    );

    let team = devs[0].store.team().expect("team").expect("enrolled");
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("marker", marker.as_bytes().to_vec()),
        ("marker prefix", b"CANARY-7f3a9c".to_vec()),
        ("marker chinese", "心桥测试标记".as_bytes().to_vec()),
        ("device name", "林老师".as_bytes().to_vec()),
        ("team key", team.key.expose().to_vec()),
        ("device token", team.token.expose().as_bytes().to_vec()),
    ];
    let files = relay.all_bytes();
    assert!(files.iter().any(|(p, _)| p.ends_with("relay.db")));
    for (path, bytes) in &files {
        for (what, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{what} found in {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_device_that_joins_last_receives_everything() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["lead", "v1"]);
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../handbooks");
    devs[0].store.import_handbooks(&[dir]).expect("import");
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = open_case(&mut devs[i % 2], Risk::Low);
        devs[i % 2]
            .store
            .add_contact(&id, Channel::Hotline, &format!("记录 {i}"), Some(i as i64))
            .expect("contact");
        ids.push(id);
    }
    sync_until_quiet(&mut devs, &[0, 1]);
    // Compaction between: the lead pushes snapshots that supersede.
    let before = relay.envelope_count();
    devs[0]
        .sync_with(
            &mut heartbridge_client::BlockingTransport::default(),
            &SyncOptions {
                snapshot_all: true,
                ..Default::default()
            },
        )
        .expect("snapshots");
    assert!(
        relay.envelope_count() < before + ids.len() as i64 + 4,
        "snapshots superseded nothing"
    );

    // A supervisor: it reads every case of the team.
    let code = heartbridge_client::invite(
        &mut devs[0].store,
        heartbridge_core::proto::Role::Supervisor,
    )
    .expect("invite");
    let mut late = Device::new("late");
    heartbridge_client::join(&mut late.store, &code).expect("join");
    late.sync();
    // The cases' keys reach a newcomer from a device that holds them: the
    // lead's next sync grants them, and the newcomer's next sync opens
    // everything it already received.
    devs[0].sync();
    late.sync();
    for id in &ids {
        assert_eq!(late.case(id), devs[0].case(id));
    }
    let mut a = devs[0].store.list_handbooks().expect("list");
    let mut b = late.store.list_handbooks().expect("list");
    a.sort_by(|x, y| x.id.cmp(&y.id));
    b.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(a, b);
    assert_eq!(
        late.store.search("安全计划", 5).expect("search"),
        devs[0].store.search("安全计划", 5).expect("search")
    );
}

#[test]
fn compaction_leaves_every_device_unchanged() {
    let relay = Relay::start();
    // v1 is a volunteer: the case is its own, so it reads it; the lead and
    // the supervisor v2 read every case.
    let mut devs = team_with(
        &relay,
        &["lead", "v1", "v2"],
        &[Role::Volunteer, Role::Supervisor],
    );
    let id = open_case(&mut devs[1], Risk::Low);
    sync_until_quiet(&mut devs, &[0, 1, 2]);
    for round in 0..6 {
        for (i, d) in devs.iter_mut().enumerate() {
            d.store
                .add_contact(
                    &id,
                    Channel::Hotline,
                    &format!("第{round}轮，设备{i}"),
                    None,
                )
                .expect("contact");
        }
        sync_until_quiet(&mut devs, &[0, 1, 2]);
    }
    let before: Vec<_> = devs.iter().map(|d| d.case(&id)).collect();
    // A volunteer's snapshot lets the relay drop nothing: only the lead and
    // supervisors may compact.
    let rows_before = relay.envelope_count();
    devs[1]
        .sync_with(
            &mut heartbridge_client::BlockingTransport::default(),
            &SyncOptions {
                snapshot_all: true,
                ..Default::default()
            },
        )
        .expect("snapshot");
    assert!(
        relay.envelope_count() > rows_before,
        "a volunteer's snapshot compacted"
    );
    let rows_before = relay.envelope_count();
    devs[0]
        .sync_with(
            &mut heartbridge_client::BlockingTransport::default(),
            &SyncOptions {
                snapshot_all: true,
                ..Default::default()
            },
        )
        .expect("snapshot");
    assert!(
        relay.envelope_count() < rows_before,
        "the relay dropped nothing"
    );
    sync_until_quiet(&mut devs, &[2, 0, 1]);
    let after: Vec<_> = devs.iter().map(|d| d.case(&id)).collect();
    assert_eq!(before, after);
    assert_eq!(after[0].contacts.len(), 18);
    // Each device's own store compacts too, and stays identical.
    for d in &mut devs {
        d.store.compact(&id).expect("compact");
    }
    assert_eq!(devs.iter().map(|d| d.case(&id)).collect::<Vec<_>>(), before);
}

#[test]
fn a_revised_handbook_sends_only_the_difference() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["lead", "v1"]);
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../handbooks/zh/crisis-risk-assessment-referral.md");
    devs[0]
        .store
        .import_handbooks(std::slice::from_ref(&src))
        .expect("import");
    sync_until_quiet(&mut devs, &[0, 1]);
    let full = std::fs::read(&src).expect("read").len();

    let dir = tempfile::tempdir().expect("tmp");
    let revised = dir.path().join("crisis.md");
    let text = std::fs::read_to_string(&src)
        .expect("read")
        .replacen("version: 1.0", "version: 1.1", 1)
        .replacen(
            "## 十、转介",
            "## 十、转介\n\n修订说明：转介前先与督导确认对方机构的值班时间。\n",
            1,
        );
    std::fs::write(&revised, text).expect("write");
    let out = devs[0]
        .store
        .import_handbooks(&[revised])
        .expect("reimport");
    assert_eq!(out[0].outcome, "updated");
    let pushed = devs[0].sync();
    let pulled = devs[1].sync();
    assert_eq!(pulled.applied, 1);
    assert!(
        pushed.bytes_sent < full / 20 && pulled.bytes_received < full / 20,
        "revision cost {} up / {} down bytes for a {full}-byte handbook",
        pushed.bytes_sent,
        pulled.bytes_received
    );
    let list = devs[1].store.list_handbooks().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].version, "1.1");
    assert!(!devs[1]
        .store
        .search("值班时间 修订", 5)
        .expect("search")
        .is_empty());
    let id = devs[1]
        .store
        .resolve(DocKind::Handbook, &list[0].id)
        .expect("id");
    assert_eq!(
        devs[1].store.handbook(&id).expect("hb"),
        devs[0].store.handbook(&id).expect("hb")
    );
}

#[test]
fn members_are_listed_with_role_name_and_last_sync_and_roles_are_enforced() {
    let relay = Relay::start();
    let mut devs = team_with(&relay, &["林老师", "小王"], &[Role::Volunteer]);
    let code = heartbridge_client::invite(
        &mut devs[0].store,
        heartbridge_core::proto::Role::Supervisor,
    )
    .expect("invite");
    let mut sup = Device::new("周督导");
    heartbridge_client::join(&mut sup.store, &code).expect("join");
    // A sync that pushes is answered after its commit, which records the
    // device's last sync (a pull-only sync records it in the next commit).
    open_case(&mut devs[1], Risk::Low);
    devs[1].sync();
    let members = heartbridge_client::members(&sup.store).expect("members");
    assert_eq!(members.len(), 3);
    let by_name = |n: &str| {
        members
            .iter()
            .find(|m| m.name.as_deref() == Some(n))
            .expect("member")
    };
    assert_eq!(by_name("林老师").role, heartbridge_core::proto::Role::Lead);
    assert_eq!(
        by_name("小王").role,
        heartbridge_core::proto::Role::Volunteer
    );
    assert!(by_name("小王").last_sync_at.is_some());
    assert!(by_name("周督导").this_device && by_name("周督导").last_sync_at.is_none());
    // A volunteer may not invite; a supervisor may invite volunteers only.
    let e =
        heartbridge_client::invite(&mut devs[1].store, heartbridge_core::proto::Role::Volunteer)
            .unwrap_err();
    assert!(e.to_string().contains("role"), "{e}");
    assert!(
        heartbridge_client::invite(&mut sup.store, heartbridge_core::proto::Role::Lead).is_err()
    );
    assert!(
        heartbridge_client::invite(&mut sup.store, heartbridge_core::proto::Role::Volunteer)
            .is_ok()
    );
}
