//! The PostgreSQL fixture of the relay tests (issue 11): relays and teams
//! over a database of a throw-away cluster (`heartbridge-pgtest`).

use heartbridge_proto::{TeamId, TeamKey};
use heartbridge_relay::{Database, PgTarget};

use super::{Team, TestRelay};

/// The relay's `Database` for the PostgreSQL URL `url`.
pub fn database(url: &str) -> Database {
    Database::Postgres(PgTarget::parse(url).expect("a PostgreSQL URL"))
}

/// A relay (in this process) over the PostgreSQL database at `url`.
pub async fn relay(url: &str) -> TestRelay {
    let db = database(url);
    TestRelay::start_with(move |c| c.database = db).await
}

/// Creates a team in the database at `url`, as the operator would
/// (`heartbridge-relay team create --db postgres://…`).
pub async fn team(url: &str) -> Team {
    let db = database(url);
    let created = tokio::task::spawn_blocking(move || {
        heartbridge_relay::create_team_in(&db, "Hotline").expect("create team")
    })
    .await
    .expect("create team task");
    Team {
        id: TeamId::from_hex(&created.team_id).expect("hex team id"),
        key: TeamKey::generate(),
        lead_token: created.lead_token,
    }
}
