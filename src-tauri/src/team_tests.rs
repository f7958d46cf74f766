//! The team commands against a real relay on loopback: the lead's device
//! removes a member (`revoke_member`), and the app's background sync on
//! the removed device stops, then erases on the lead's signed record.

use std::sync::{Arc, Mutex};

use heartbridge_core::{Group, NewCase, Risk, Store};
use heartbridge_tests::{team, Relay};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::store_slot::{ErasedBy, LockState, StoreSlot, Unlocked};
use crate::sync_task::{Events, Syncer};

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Value)>>);

impl Events for Recorder {
    fn send(&self, event: &str, payload: Value) {
        self.0.lock().unwrap().push((event.to_owned(), payload));
    }
}

/// The app's slot over a device's profile, unlocked with the test PIN.
fn app_slot(dir: &std::path::Path) -> Arc<StoreSlot> {
    let slot = Arc::new(StoreSlot::new(dir.join("profile")));
    assert_eq!(
        slot.unlock(Zeroizing::new(
            heartbridge_core::testing::TEST_PIN.to_owned()
        ))
        .unwrap(),
        Unlocked::Opened
    );
    slot
}

fn device_id(store: &Store) -> String {
    store.team().unwrap().unwrap().device_id
}

#[test]
fn the_lead_removes_a_member_who_stops_syncing_then_erases_and_the_others_get_the_new_key() {
    let relay = Relay::start();
    let mut devices = team(&relay, &["林老师", "小王", "小李"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = || {
        let _in = rt.enter();
        heartbridge_client::HttpTransport::new().unwrap()
    };

    // 小王 uses the app: a note of his own, synced.
    let note = "小王的来电记录：她说考试前睡不着";
    devices[1]
        .store
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::ExamStress,
            risk: Risk::Low,
        })
        .unwrap();
    let case = devices[1].store.list_cases(&Default::default()).unwrap()[0]
        .id
        .clone();
    let case = devices[1]
        .store
        .resolve(heartbridge_core::DocKind::Case, &case.to_string())
        .unwrap();
    devices[1]
        .store
        .add_contact(&case, heartbridge_core::Channel::Hotline, note, Some(10))
        .unwrap();
    // Everyone syncs: the lead folds the new members into its roster.
    heartbridge_tests::sync_until_quiet(&mut devices, &[1, 0, 2, 0]);
    let wang = device_id(&devices[1].store);
    let li_dir = devices[2].profile_dir().to_owned();

    // The lead's and 小王's devices are now the app's (their stores closed
    // on this side, opened by the app's slot with the PIN).
    let mut devices = devices.into_iter();
    let lead = devices.next().unwrap();
    let wang_dev = devices.next().unwrap();
    let mut li = devices.next().unwrap();
    let lead_dir = lead.profile_dir().to_owned();
    let wang_dir = wang_dev.profile_dir().to_owned();
    let (lead_keep, wang_keep) = (lead, wang_dev);
    let lead_slot = app_slot(&lead_dir);
    let wang_slot = app_slot(&wang_dir);
    let lead_sync = Syncer::new(Arc::clone(&lead_slot), http());
    let wang_sync = Syncer::new(Arc::clone(&wang_slot), http());
    let events = Recorder::default();

    // Who is the lead, as the UI learns it.
    let st = lead_slot.with(|s| super::status_of(s)).unwrap();
    assert_eq!(st["team"]["isLead"], true);
    let st = wang_slot.with(|s| super::status_of(s)).unwrap();
    assert_eq!(st["team"]["isLead"], false);

    // A member's device cannot remove anyone (checked before the relay).
    let e = rt
        .block_on(super::revoke_member(
            &wang_slot,
            &wang_sync,
            &events,
            &device_id(&li.store),
        ))
        .unwrap_err();
    assert_eq!(e.kind, "forbidden");
    // The lead cannot remove itself.
    let me = lead_slot.with(|s| Ok(device_id(s))).unwrap();
    let e = rt
        .block_on(super::revoke_member(&lead_slot, &lead_sync, &events, &me))
        .unwrap_err();
    assert_eq!(e.kind, "invalid_input");

    // The relay is told first, by the lead's token; before the lead's
    // device rotates the key, 小王's app syncs: the relay refuses it, and
    // with no signed revocation yet the sync stops but nothing is erased.
    let lead_team = lead_slot.with(|s| s.team()).unwrap().unwrap();
    let cutoff = rt
        .block_on(lead_sync.http().revoke(&lead_team, &wang))
        .unwrap();
    let e = rt.block_on(wang_sync.run(&events)).unwrap_err();
    assert_eq!(e.kind, "device_revoked");
    assert!(wang_sync.stopped(), "the sync is not stopped");
    assert_eq!(wang_slot.state().unwrap().0, LockState::Unlocked);
    let kept = wang_slot.with(|s| s.case(&case)).unwrap();
    assert!(
        kept.contacts.iter().any(|c| c.text == note),
        "the note is gone"
    );
    let status = rt.block_on(wang_sync.status());
    assert_eq!(status["stopped"], true);
    assert_eq!(status["connection"]["kind"], "device_revoked");

    // Now the whole removal through the app's command on the lead's
    // device (the relay answers the revocation again): a new key epoch,
    // and the roster goes out at once.
    let out = rt
        .block_on(super::revoke_member(&lead_slot, &lead_sync, &events, &wang))
        .unwrap();
    assert_eq!(out["epoch"], 2, "{out}");
    assert_eq!(out["synced"], true, "{out}");
    assert!(out["cutoffSeq"].as_u64().unwrap() >= cutoff);
    let members = rt.block_on(lead_sync.http().members(&lead_team)).unwrap();
    assert!(members.iter().any(|m| m.device_id == wang && m.revoked));

    // 小王's "Sync now": still refused; the lead's signed roster says so,
    // so the app erases the profile and drops its store.
    let e = rt.block_on(wang_sync.run(&events)).unwrap_err();
    assert_eq!(e.kind, "erased");
    assert_eq!(wang_slot.state().unwrap().0, LockState::Destroyed);
    assert_eq!(wang_slot.erased_by().unwrap(), Some(ErasedBy::Revoked));
    assert!(!wang_dir
        .join("profile")
        .join(heartbridge_core::DB_FILE)
        .exists());
    assert!(!wang_dir
        .join("profile")
        .join(heartbridge_core::KEYS_FILE)
        .exists());
    assert_eq!(
        wang_slot.with(|s| s.setting("x")).unwrap_err().kind,
        "profile_missing"
    );

    // 小李 takes the new key at its next sync and goes on.
    li.sync();
    assert_eq!(li.store.key_epoch().unwrap(), 2);
    assert!(li_dir.exists());
    drop((lead_keep, wang_keep));
}

/// The claim form's certificate fingerprint (`team_claim`'s `fingerprint`,
/// like `heartbridge team claim --pin`): optional, taken as the relay
/// prints it, and a mistyped one is refused naming its field (the form
/// shows the error there).
#[test]
fn the_claim_forms_fingerprint_is_optional_and_a_mistyped_one_names_its_field() {
    assert!(crate::cert_pin_arg(None).unwrap().is_none());
    assert!(crate::cert_pin_arg(Some("  ")).unwrap().is_none());
    let fp = "sha256:fVlJRUatAWvX9sI_P6FGbILQl8byCk3XXqT65KPMQhk";
    let pin = crate::cert_pin_arg(Some(&format!(" {fp}\n"))).unwrap();
    assert_eq!(pin.map(|p| p.to_string()).as_deref(), Some(fp));
    for bad in ["sha256:nope", &fp[7..], &fp[..fp.len() - 1]] {
        let e: crate::error::ApiError = crate::cert_pin_arg(Some(bad)).unwrap_err().into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["field"].as_str()),
            (Some("invalid_input"), Some("certificate fingerprint")),
            "{bad}"
        );
    }
}
