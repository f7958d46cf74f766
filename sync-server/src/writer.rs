//! Group commit: one thread writes every sync's push.
//!
//! Request handlers queue a [`PushJob`] on a bounded channel and await the
//! answer. The writer thread takes the first waiting job, then everything
//! else already queued (up to [`MAX_BATCH_JOBS`] jobs or [`MAX_BATCH_BYTES`]
//! bytes), commits them all in ONE transaction — one fsync — and only then
//! answers each. No timer: while one batch is being made durable the next
//! one queues up, so the batch size follows the load by itself (1 job when
//! idle, hundreds at shift end).

use std::sync::Arc;
use std::thread::JoinHandle;

use heartbridge_proto::Ack;
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::metrics::Metrics;
use crate::storage::{PushJob, Storage};

/// Jobs waiting before senders wait (backpressure).
const QUEUE: usize = 4096;
/// Most jobs per transaction.
const MAX_BATCH_JOBS: usize = 1024;
/// Most ciphertext bytes per transaction.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

type Reply = oneshot::Sender<Result<Vec<Ack>, StoreError>>;

enum Message {
    Push { job: PushJob, reply: Option<Reply> },
    Stop,
}

/// The handlers' side of the writer.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Message>,
}

/// The running writer thread.
pub(crate) struct WriterThread {
    tx: mpsc::Sender<Message>,
    thread: JoinHandle<()>,
}

/// Starts the writer thread.
pub(crate) fn start(
    storage: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Writer, WriterThread)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("heartbridge-writer".into())
        .spawn(move || run(storage.as_ref(), &metrics, rx))?;
    Ok((Writer { tx: tx.clone() }, WriterThread { tx, thread }))
}

impl Writer {
    /// Stores a push durably; answers once committed.
    pub(crate) async fn push(&self, job: PushJob) -> Result<Vec<Ack>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Message::Push {
                job,
                reply: Some(reply),
            })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queues a job whose durability nobody waits for (a pull-only sync's
    /// `last_sync_at`); it rides along with the next batch.
    pub(crate) async fn touch(&self, job: PushJob) -> Result<(), StoreError> {
        self.tx
            .send(Message::Push { job, reply: None })
            .await
            .map_err(|_| StoreError::WriterStopped)
    }
}

impl WriterThread {
    /// Commits everything queued so far, then stops the thread. Call once
    /// no handler can queue more (after the HTTP server has drained).
    pub(crate) fn stop(self) -> std::thread::Result<()> {
        // The queue may be full; a blocking send waits for room.
        let _ = self.tx.blocking_send(Message::Stop);
        drop(self.tx);
        self.thread.join()
    }
}

fn run(storage: &dyn Storage, metrics: &Metrics, mut rx: mpsc::Receiver<Message>) {
    let mut stopping = false;
    loop {
        // Once stopping, commit what is still queued and no more.
        let first = if stopping {
            rx.try_recv().ok()
        } else {
            rx.blocking_recv()
        };
        let Some(first) = first else { break };
        let mut jobs = Vec::new();
        let mut replies = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Message::Push { job, reply } => {
                    bytes += job.bytes();
                    jobs.push(job);
                    replies.push(reply);
                }
                Message::Stop => {
                    // Nothing is queued after Stop; finish what is.
                    rx.close();
                    stopping = true;
                }
            }
            if jobs.len() < MAX_BATCH_JOBS && bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if jobs.is_empty() {
            continue;
        }
        match storage.commit(&jobs) {
            Ok(results) => {
                metrics.commit(jobs.len());
                for (reply, result) in replies.into_iter().zip(results) {
                    match &result {
                        // The caller's fault (revoked meanwhile, a stale
                        // roster): answered as a refusal, counted by kind.
                        Err(StoreError::Refused(why)) => {
                            tracing::info!(refusal = %why, "a push was refused in its transaction");
                        }
                        Err(e) => tracing::error!(error = %e, "a push was rolled back"),
                        Ok(_) => {}
                    }
                    if let Some(reply) = reply {
                        // The requester may have gone away; its push stands.
                        let _ = reply.send(result);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = jobs.len(), "a write batch failed");
                // A database that is down or failing (PostgreSQL) is a 503
                // the devices retry; their pushes are idempotent, so one
                // whose commit did land is acked, not doubled, on retry.
                let unavailable = e.is_unavailable();
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(if unavailable {
                        StoreError::Unavailable("the write batch could not be committed".into())
                    } else {
                        StoreError::BatchFailed
                    }));
                }
            }
        }
    }
}
