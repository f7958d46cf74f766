#![no_main]
//! Fuzz target `relay`: request bodies sent to a real relay (its SQLite
//! database in a temp dir) on 127.0.0.1 over one kept-alive HTTP/1.1
//! connection. See `heartbridge_fuzz::relay_checks`.

use std::sync::{Mutex, OnceLock};

use heartbridge_fuzz::relay_checks::{check_answer, resign, route, signed_push, Caller};
use heartbridge_proto::{
    identity::join_proof, seal_name, DeviceSecret, EnrollRequest, EnrollResponse, InviteRequest,
    InviteResponse, Role, Secret, TeamId, TeamKey,
};
use heartbridge_relay::{Config, RateLimits};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

struct Harness {
    rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    volunteer: Secret,
    lead: Secret,
    team: TeamId,
    /// Each device's relay id and signing keys, for modes 4 and 5.
    volunteer_keys: ([u8; 16], DeviceSecret),
    lead_keys: ([u8; 16], DeviceSecret),
    _dir: tempfile::TempDir,
}

fn device_id(hex_id: &str) -> [u8; 16] {
    hex::decode(hex_id)
        .expect("hex device id")
        .try_into()
        .expect("16 bytes")
}

impl Harness {
    fn connect(&mut self) -> SendRequest<Full<Bytes>> {
        let addr = self.addr;
        self.rt.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            sender
        })
    }

    /// One request; `None` if the connection failed under it.
    fn send(&mut self, path: &str, caller: Caller, ct: &str, body: &[u8]) -> Option<(u16, Bytes)> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(self.connect());
        }
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", "relay.fuzz")
            .header("content-type", ct);
        match caller {
            Caller::Nobody => {}
            Caller::Volunteer => {
                req = req.header(
                    "authorization",
                    format!("Bearer {}", self.volunteer.expose()),
                )
            }
            Caller::Lead => {
                req = req.header("authorization", format!("Bearer {}", self.lead.expose()))
            }
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("a request");
        let sender = self.sender.as_mut().expect("connected");
        let answer = self.rt.block_on(async {
            sender.ready().await.ok()?;
            let resp = sender.send_request(req).await.ok()?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        });
        if answer.is_none() {
            self.sender = None;
        }
        answer
    }

    fn json<T: serde::Serialize>(&mut self, path: &str, caller: Caller, t: &T) -> Bytes {
        let body = serde_json::to_vec(t).expect("json");
        let (status, body) = self
            .send(path, caller, "application/json", &body)
            .expect("an answer");
        assert_eq!(status, 200, "{path} while setting up");
        body
    }

    fn new() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = dir.path().join("relay.db");
        let created = heartbridge_relay::create_team(&db, "Fuzz team").expect("a team");
        let mut config = Config::new(&db);
        // The fuzzer is one client sending thousands of requests a second.
        config.rate_limits = RateLimits::OFF;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(heartbridge_relay::serve(
            listener,
            config,
            std::future::pending(),
        ));
        let mut h = Harness {
            rt,
            addr,
            sender: None,
            volunteer: Secret::from_string(String::new()),
            lead: Secret::from_string(String::new()),
            team: TeamId::from_hex(&created.team_id).expect("team id"),
            volunteer_keys: ([0; 16], DeviceSecret::generate()),
            lead_keys: ([0; 16], DeviceSecret::generate()),
            _dir: dir,
        };
        let team = h.team;
        let key = TeamKey::generate();
        // Each device enrolls with its own keys and the join proof, as a
        // device does.
        let enroll = |token: &Secret, name: &str, role: Role, secret: &DeviceSecret| {
            let public = secret.public();
            EnrollRequest {
                team_id: team.to_hex(),
                token: token.clone(),
                key_check: key.check_value(),
                name_sealed: seal_name(&key, &team, name),
                enrollment_id: None,
                sign_pk: hex::encode(public.sign),
                kx_pk: hex::encode(public.kx),
                epoch: 1,
                proof: hex::encode(join_proof(&key, &team, &public, role)),
            }
        };
        let lead: EnrollResponse = serde_json::from_slice(&h.json(
            "/v1/claim",
            Caller::Nobody,
            &enroll(&created.lead_token, "Lead", Role::Lead, &h.lead_keys.1),
        ))
        .expect("claimed");
        h.lead = lead.device_token;
        h.lead_keys.0 = device_id(&lead.device_id);
        let invite: InviteResponse = serde_json::from_slice(&h.json(
            "/v1/invites",
            Caller::Lead,
            &InviteRequest {
                role: Role::Volunteer,
                ttl_secs: 0,
                key_check: None,
            },
        ))
        .expect("invited");
        let vol: EnrollResponse = serde_json::from_slice(&h.json(
            "/v1/join",
            Caller::Nobody,
            &enroll(
                &invite.token,
                "Volunteer",
                Role::Volunteer,
                &h.volunteer_keys.1,
            ),
        ))
        .expect("joined");
        h.volunteer = vol.device_token;
        h.volunteer_keys.0 = device_id(&vol.device_id);
        h
    }

    fn run(&mut self, data: &[u8]) {
        let Some((path, caller, ct, body)) = route(data) else {
            return;
        };
        let resigned = if signed_push(data) {
            let (author, secret) = if caller == Caller::Lead {
                &self.lead_keys
            } else {
                &self.volunteer_keys
            };
            resign(body, &self.team, *author, secret)
        } else {
            None
        };
        let body = resigned.as_deref().unwrap_or(body);
        // A dropped connection is retried once on a new one; twice is a
        // finding (a handler that panicked or a relay that stopped).
        let (status, answer) = self
            .send(path, caller, ct, body)
            .or_else(|| self.send(path, caller, ct, body))
            .unwrap_or_else(|| panic!("{path}: no answer from the relay"));
        check_answer(path, status, &answer);
    }
}

static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS
        .get_or_init(|| Mutex::new(Harness::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .run(data);
});
