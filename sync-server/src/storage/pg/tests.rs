//! PostgreSQL store tests (against a real cluster from crates/pgtest).
