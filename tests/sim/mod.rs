//! A deterministic simulation of a Heartbridge team, in the spirit of
//! samod's test network.
//!
//! - [`world`]: the `Sim` — real stores on temp files, the real relay on
//!   loopback over its real SQLite file, and `step(op)`.
//! - [`net`]: the network that reorders, duplicates, delays and drops
//!   requests and responses, cuts answers and crashes devices, all from
//!   one seed.
//! - [`history`]: the operations and their proptest strategies.
//! - [`invariants`]: what must hold after every run (for the devices not
//!   revoked, and for the revoked ones and the relay).
//!
//! Only the network is seeded; document ids, actor ids and timestamps come
//! from the core itself and differ between runs of the same history, so a
//! failure replays as the same history and network choices, not byte for
//! byte the same files.

pub mod history;
pub mod invariants;
pub mod net;
pub mod world;
