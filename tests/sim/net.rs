//! The simulated network between devices and the relay.
//!
//! Devices that sync "at the same time" each run their real
//! `Store::sync` on a thread of their own, with a [`Link`] as transport.
//! A link hands its request to the network and waits. The network runs on
//! the caller's thread and lets exactly one device run at a time: it picks
//! one waiting request (seeded RNG: that is the reordering), decides what
//! happens to it, answers, and waits until that device either sends its
//! next request or finishes. So a run is a function of the seed and the
//! history, however the OS schedules threads.
//!
//! What can happen to a request, besides plain delivery:
//! - [`Fault::DropRequest`]: the relay never sees it; the device gets a
//!   network error.
//! - [`Fault::DropResponse`]: the relay handles it; the device gets a
//!   network error.
//! - [`Fault::Duplicate`]: the relay handles it twice; the device sees one
//!   (the second) answer.
//! - [`Fault::CutResponse`]: the relay handles it; the connection drops
//!   in the middle of the answer, and the device gets what arrived of it
//!   (`TransportError::Cut`, as the HTTP transport reports it).
//! - [`Fault::Late`]: the device times out (network error); the request
//!   stays in the network and reaches the relay later, after other
//!   devices' requests, its answer going nowhere.
//! - [`Fault::Crash`]: the device's process dies while the request is in
//!   flight (the relay may or may not have handled it). From then on none
//!   of its requests leaves the device (its sync, which may retry, is
//!   abandoned: every further call fails), and when the sync has returned
//!   the simulation reopens the store from its files.
//!
//! A revoked device's sync also asks for the lead's roster
//! (`GET /v1/roster`, [`Transport::roster`]) to learn whether the lead
//! signed its revocation; that request goes through the same network and
//! suffers the same faults (a late one is simply lost: it changes nothing
//! on the relay).
//!
//! A sync may retry after a failure, so a fault does not have to end it;
//! a sync that fails with no fault, or succeeds although its device
//! crashed, is a bug.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use heartbridge_client::BlockingTransport;
use heartbridge_core::{Store, SyncOptions, SyncReport, Team, Transport, TransportError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the network did to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    DropRequest,
    DropResponse,
    Duplicate,
    CutResponse,
    Late,
    Crash,
}

/// Counts of what the network did, for the soak's report.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetStats {
    pub requests: usize,
    /// Requests the relay handled (a duplicate counts twice).
    pub delivered: usize,
    /// Requests delivered out of the order they were sent in.
    pub reordered: usize,
    pub dropped_requests: usize,
    pub dropped_responses: usize,
    pub duplicated: usize,
    pub cut: usize,
    pub late: usize,
    pub crashes: usize,
}

/// How one device's sync went.
#[derive(Debug)]
pub struct Outcome {
    pub dev: usize,
    /// `Err` if the sync panicked (the panic's text).
    pub result: Result<heartbridge_core::Result<SyncReport>, String>,
    /// The faults that hit its requests, in order.
    pub faults: Vec<Fault>,
    /// Whether the device crashed during the sync.
    pub crashed: bool,
}

type Answer = Result<Vec<u8>, TransportError>;

/// What a device asks the relay.
enum Req {
    /// `/v1/sync` with this body.
    Sync(Vec<u8>),
    /// `GET /v1/roster`.
    Roster,
}

enum Event {
    Request {
        dev: usize,
        team: Team,
        req: Req,
        reply: mpsc::Sender<Answer>,
    },
    Done {
        dev: usize,
        result: Result<heartbridge_core::Result<SyncReport>, String>,
    },
}

/// A device's transport: hands each request to the network and waits.
struct Link {
    dev: usize,
    events: mpsc::Sender<Event>,
}

impl Link {
    fn ask(&mut self, team: &Team, req: Req) -> Answer {
        let gone = || TransportError::Network("the simulated network stopped".into());
        let (reply, answer) = mpsc::channel();
        self.events
            .send(Event::Request {
                dev: self.dev,
                team: team.clone(),
                req,
                reply,
            })
            .map_err(|_| gone())?;
        answer.recv().unwrap_or_else(|_| Err(gone()))
    }
}

impl Transport for Link {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> Answer {
        self.ask(team, Req::Sync(body))
    }

    fn roster(&mut self, team: &Team) -> Answer {
        self.ask(team, Req::Roster)
    }
}

/// A request waiting in the network.
struct Waiting {
    dev: usize,
    team: Team,
    req: Req,
    reply: mpsc::Sender<Answer>,
}

pub struct Net {
    rng: StdRng,
    /// 0: perfect network; 3: hostile.
    level: u8,
    relay: BlockingTransport,
    /// Requests whose device gave up on them, still on their way.
    late: Vec<(Team, Vec<u8>)>,
    pub stats: NetStats,
}

impl Net {
    pub fn new(seed: u64, level: u8) -> Net {
        Net {
            rng: StdRng::seed_from_u64(seed),
            level: level.min(3),
            relay: BlockingTransport::default(),
            late: Vec::new(),
            stats: NetStats::default(),
        }
    }

    fn fault(&mut self) -> Option<Fault> {
        let p = [0.0, 0.02, 0.05, 0.10][usize::from(self.level)];
        const ALL: [Fault; 6] = [
            Fault::DropRequest,
            Fault::DropResponse,
            Fault::Duplicate,
            Fault::CutResponse,
            Fault::Late,
            Fault::Crash,
        ];
        ALL.into_iter().find(|_| self.rng.random_bool(p))
    }

    /// The relay handles a request (real HTTP to the real relay).
    fn deliver(&mut self, team: &Team, body: Vec<u8>) -> Answer {
        self.stats.delivered += 1;
        self.relay.sync(team, body)
    }

    /// What happens to a roster request: it has no effect on the relay,
    /// so only whether its answer arrives matters.
    fn carry_roster(&mut self, team: &Team, fault: Option<Fault>) -> Answer {
        let lost = |what: &str| Err(TransportError::Network(what.into()));
        let fetch = |net: &mut Net| {
            net.stats.delivered += 1;
            net.relay.roster(team)
        };
        match fault {
            None => fetch(self),
            Some(Fault::DropRequest) => {
                self.stats.dropped_requests += 1;
                lost("connection refused")
            }
            Some(Fault::DropResponse) => {
                self.stats.dropped_responses += 1;
                let _ = fetch(self);
                lost("connection reset")
            }
            Some(Fault::Duplicate) => {
                self.stats.duplicated += 1;
                let _ = fetch(self);
                fetch(self)
            }
            Some(Fault::CutResponse) => {
                self.stats.cut += 1;
                let mut received = fetch(self)?;
                let keep = self.rng.random_range(0..received.len().max(1));
                received.truncate(keep);
                Err(TransportError::Cut {
                    detail: "connection reset in the middle of the answer".into(),
                    received,
                })
            }
            Some(Fault::Late) => {
                self.stats.late += 1;
                lost("timed out")
            }
            Some(Fault::Crash) => {
                self.stats.crashes += 1;
                lost("the device crashed")
            }
        }
    }

    /// Now and then a late request finally reaches the relay.
    fn maybe_deliver_late(&mut self) {
        if !self.late.is_empty() && self.rng.random_bool(0.3) {
            let i = self.rng.random_range(0..self.late.len());
            let (team, body) = self.late.remove(i);
            let _ = self.deliver(&team, body);
        }
    }

    /// The network settles: every late request either arrives or is lost.
    pub fn settle(&mut self) {
        while !self.late.is_empty() {
            let i = self.rng.random_range(0..self.late.len());
            let (team, body) = self.late.remove(i);
            if self.rng.random_bool(0.5) {
                let _ = self.deliver(&team, body);
            }
        }
    }

    /// What happens to one request, and what its device is told.
    fn carry(&mut self, team: &Team, body: Vec<u8>, fault: Option<Fault>) -> Answer {
        let lost = |what: &str| Err(TransportError::Network(what.into()));
        match fault {
            None => self.deliver(team, body),
            Some(Fault::DropRequest) => {
                self.stats.dropped_requests += 1;
                lost("connection refused")
            }
            Some(Fault::DropResponse) => {
                self.stats.dropped_responses += 1;
                let _ = self.deliver(team, body);
                lost("connection reset")
            }
            Some(Fault::Duplicate) => {
                self.stats.duplicated += 1;
                let _ = self.deliver(team, body.clone());
                self.deliver(team, body)
            }
            Some(Fault::CutResponse) => {
                self.stats.cut += 1;
                let mut received = self.deliver(team, body)?;
                let keep = self.rng.random_range(0..received.len().max(1));
                received.truncate(keep);
                Err(TransportError::Cut {
                    detail: "connection reset in the middle of the answer".into(),
                    received,
                })
            }
            Some(Fault::Late) => {
                self.stats.late += 1;
                self.late.push((team.clone(), body));
                lost("timed out")
            }
            Some(Fault::Crash) => {
                self.stats.crashes += 1;
                if self.rng.random_bool(0.5) {
                    let _ = self.deliver(team, body);
                }
                lost("the device crashed")
            }
        }
    }

    /// Runs these devices' syncs at the same time, their requests
    /// interleaved and faulted by the seed. Returns how each went.
    pub fn sync_concurrently(
        &mut self,
        syncs: Vec<(usize, &mut Store, SyncOptions)>,
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut waiting: Vec<Waiting> = Vec::new();
        std::thread::scope(|scope| {
            let (tx, events) = mpsc::channel::<Event>();
            let on_event =
                |ev: Event, waiting: &mut Vec<Waiting>, outcomes: &mut Vec<Outcome>| match ev {
                    Event::Request {
                        dev,
                        team,
                        req,
                        reply,
                    } => waiting.push(Waiting {
                        dev,
                        team,
                        req,
                        reply,
                    }),
                    Event::Done { dev, result } => outcomes.push(Outcome {
                        dev,
                        result,
                        faults: Vec::new(),
                        crashed: false,
                    }),
                };
            let next = |events: &mpsc::Receiver<Event>| {
                events
                    .recv()
                    .expect("a device thread ends by reporting Done")
            };
            for (dev, store, opts) in syncs {
                let tx = tx.clone();
                scope.spawn(move || {
                    let mut link = Link {
                        dev,
                        events: tx.clone(),
                    };
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        store.sync(&mut link, &opts, &mut |_| {})
                    }))
                    .map_err(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default()
                    });
                    let _ = tx.send(Event::Done { dev, result });
                });
                // Threads start one at a time: each runs to its first request.
                on_event(next(&events), &mut waiting, &mut outcomes);
            }
            drop(tx);
            let mut hit: Vec<(usize, Fault)> = Vec::new();
            while !waiting.is_empty() {
                self.maybe_deliver_late();
                let i = self.rng.random_range(0..waiting.len());
                self.stats.reordered += usize::from(i != 0);
                let w = waiting.remove(i);
                let answer = if hit.contains(&(w.dev, Fault::Crash)) {
                    // A dead process sends nothing.
                    Err(TransportError::Network("the device crashed".into()))
                } else {
                    self.stats.requests += 1;
                    let fault = self.fault();
                    if let Some(f) = fault {
                        hit.push((w.dev, f));
                    }
                    match w.req {
                        Req::Sync(body) => self.carry(&w.team, body, fault),
                        Req::Roster => self.carry_roster(&w.team, fault),
                    }
                };
                let _ = w.reply.send(answer);
                // Only that device runs now, until it asks again or ends.
                on_event(next(&events), &mut waiting, &mut outcomes);
            }
            for o in &mut outcomes {
                o.faults = hit
                    .iter()
                    .filter(|(d, _)| *d == o.dev)
                    .map(|(_, f)| *f)
                    .collect();
                o.crashed = o.faults.contains(&Fault::Crash);
            }
        });
        outcomes
    }
}
