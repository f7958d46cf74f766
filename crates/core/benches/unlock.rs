//! Unlock benchmark: what a volunteer waits for between typing the PIN and
//! seeing the profile — Argon2id of the PIN at the default cost (19 MiB,
//! 2 passes, 1 lane), then `Store::open` as a whole (the keys file read,
//! the failed-PIN counter written and fsynced twice, the DEK unwrapped,
//! SQLCipher keyed and checked). Also a wrong PIN, and `Store::init`.
//!
//! Run: `cargo bench -p heartbridge-core --bench unlock` (release) and
//! `cargo test -p heartbridge-core --bench unlock --profile dev` builds it in
//! the dev profile (dependencies, Argon2 included, are built at opt-level 2
//! there, see the root Cargo.toml). `HB_UNLOCK_ROUNDS` (default 20).

use std::time::{Duration, Instant};

use heartbridge_core::{KdfParams, Protection, Store, Unlock};

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.9), *v.last().expect("samples"))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let rounds: usize = std::env::var("HB_UNLOCK_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let kdf = KdfParams::default();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("p");
    let pin = "482916";

    let mut argon = Vec::new();
    for i in 0..rounds {
        use argon2::{Algorithm, Argon2, Params, Version};
        let params = Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32)).expect("params");
        let salt = [i as u8; 16];
        let mut out = [0u8; 32];
        let t = Instant::now();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(pin.as_bytes(), &salt, &mut out)
            .expect("argon2");
        argon.push(t.elapsed());
    }

    let t = Instant::now();
    drop(
        Store::init(
            &dir,
            "基准",
            &Protection::pin(pin).with_max_failed(u32::MAX),
        )
        .expect("init"),
    );
    let init = t.elapsed();

    let mut open = Vec::new();
    let mut wrong = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let s = Store::open(&dir, &Unlock::pin(pin)).expect("open");
        open.push(t.elapsed());
        drop(s);
        let t = Instant::now();
        let e = Store::open(&dir, &Unlock::pin("000000")).expect_err("wrong PIN");
        wrong.push(t.elapsed());
        assert_eq!(e.kind(), "wrong_pin");
    }

    println!(
        "Unlock ({profile} build, Argon2id m={} KiB t={} p={}, {rounds} rounds, ms)\n",
        kdf.m_kib, kdf.t, kdf.p
    );
    println!("| step | p50 | p90 | max |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, v) in [
        ("Argon2id of the PIN alone", argon),
        ("`Store::open`, right PIN", open),
        ("`Store::open`, wrong PIN", wrong),
    ] {
        let (a, b, c) = stats(v);
        println!("| {name} | {} | {} | {} |", ms(a), ms(b), ms(c));
    }
    println!("| `Store::init` (one run) | {} | | |", ms(init));
}
