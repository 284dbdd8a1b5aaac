//! The result writer: one task per process that receives check results from every producer
//! (workers, push endpoints), writes them to the store in batches, publishes each committed
//! batch on `check.results`, and only then tells the producers their results are safe.
//!
//! A batch closes at `max_batch` results or `linger` after its first result, whichever comes
//! first. The queue in front of the writer is bounded: when the store is slow, producers wait
//! (backpressure) instead of results being dropped. A failed commit is retried with backoff;
//! only after the last attempt are the producers told, so they can hand their work back.

use crate::{EngineError, Metrics};
use pingtower_bus::{Bus, topics};
use pingtower_core::CheckResult;
use pingtower_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most results in one transaction.
    pub max_batch: usize,
    /// Longest a result waits for others to join its batch, when someone waits for the
    /// answer (a push is answered after its commit).
    pub linger: Duration,
    /// The same for check results (`submit_check`), which nobody waits on but the worker's
    /// acknowledgement: longer, so that a quiet system commits (and fsyncs) a few times a
    /// second rather than ten. A batch closes at the earliest deadline of its results.
    pub check_linger: Duration,
    /// Submissions that may wait for the writer before producers are slowed down.
    pub queue_capacity: usize,
    /// Attempts to commit one batch before its producers are told it failed.
    pub max_attempts: u32,
    /// First retry delay; doubles up to 5 s.
    pub retry_delay: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 2_000,
            // Long enough that a quiet system commits a few times a second, not once per check
            // (each commit is an fsync); short enough that a push is answered promptly.
            linger: Duration::from_millis(100),
            check_linger: Duration::from_millis(250),
            queue_capacity: 1_024,
            max_attempts: 12,
            retry_delay: Duration::from_millis(100),
        }
    }
}

type Ack = oneshot::Sender<Result<(), EngineError>>;

struct Job {
    results: Vec<CheckResult>,
    done: Option<Ack>,
    /// Check results may linger longer than pushes.
    check: bool,
}

/// Where producers send results. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
    metrics: Metrics,
}

impl WriterHandle {
    /// Hands results to the writer and waits until they are committed.
    pub async fn write(&self, results: Vec<CheckResult>) -> Result<(), EngineError> {
        let committed = self.submit(results).await?;
        committed.await.map_err(|_| EngineError::WriterStopped)?
    }

    /// Hands results to the writer (waiting while its queue is full) and returns a receiver
    /// that resolves once they are committed.
    pub async fn submit(
        &self,
        results: Vec<CheckResult>,
    ) -> Result<oneshot::Receiver<Result<(), EngineError>>, EngineError> {
        self.send(results, false).await
    }

    /// Like `submit`, for results of scheduled checks, which may wait `check_linger` for
    /// others to join their batch.
    pub async fn submit_check(
        &self,
        results: Vec<CheckResult>,
    ) -> Result<oneshot::Receiver<Result<(), EngineError>>, EngineError> {
        self.send(results, true).await
    }

    async fn send(
        &self,
        results: Vec<CheckResult>,
        check: bool,
    ) -> Result<oneshot::Receiver<Result<(), EngineError>>, EngineError> {
        let (done, committed) = oneshot::channel();
        let n = results.len() as i64;
        // Counted before the send: the writer may take the job (and count it out) at once.
        self.metrics.writer_queue.inc_by(n);
        let sent = self
            .tx
            .send(Job {
                results,
                done: Some(done),
                check,
            })
            .await;
        if sent.is_err() {
            self.metrics.writer_queue.dec_by(n);
            return Err(EngineError::WriterStopped);
        }
        Ok(committed)
    }
}

/// The writer task.
pub struct ResultWriter {
    rx: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    config: WriterConfig,
    metrics: Metrics,
}

impl ResultWriter {
    /// Starts the writer. It stops when `shutdown` fires, after committing everything that was
    /// submitted before.
    pub fn spawn(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        config: WriterConfig,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> (WriterHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let handle = WriterHandle {
            tx,
            metrics: metrics.clone(),
        };
        let writer = Self {
            rx,
            store,
            bus,
            config,
            metrics,
        };
        (handle, tokio::spawn(writer.run(shutdown)))
    }

    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                job = self.rx.recv() => job,
                () = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            let batch = self.fill(first).await;
            self.commit(batch).await;
        }
        // Refuse new work, then commit whatever is still queued.
        self.rx.close();
        while let Some(first) = self.rx.recv().await {
            let batch = self.fill(first).await;
            self.commit(batch).await;
        }
        tracing::debug!("result writer stopped");
    }

    /// Gathers more jobs until the batch is full or the first one has lingered long enough.
    async fn fill(&mut self, first: Job) -> Vec<Job> {
        let linger = |job: &Job| {
            if job.check {
                self.config.check_linger
            } else {
                self.config.linger
            }
        };
        let mut deadline = Instant::now() + linger(&first);
        let mut size = first.results.len();
        let mut jobs = vec![first];
        while size < self.config.max_batch {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(job)) => {
                    size += job.results.len();
                    deadline = deadline.min(Instant::now() + linger(&job));
                    jobs.push(job);
                }
                Ok(None) | Err(_) => break,
            }
        }
        jobs
    }

    async fn commit(&self, mut jobs: Vec<Job>) {
        // Moved out of the jobs, not cloned: the jobs keep only their acknowledgements.
        let results: Vec<CheckResult> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.results))
            .collect();
        self.metrics.writer_queue.dec_by(results.len() as i64);
        let mut delay = self.config.retry_delay;
        let mut attempt = 1;
        let outcome = loop {
            match self.store.insert_results(&results).await {
                Ok(written) => {
                    self.metrics.results_written.inc_by(written);
                    self.metrics.result_batches.inc();
                    break Ok(());
                }
                Err(e) if attempt < self.config.max_attempts => {
                    self.metrics.result_write_errors.inc();
                    tracing::warn!(error = %e, attempt, results = results.len(), "committing results failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => {
                    self.metrics.result_write_errors.inc();
                    tracing::error!(error = %e, results = results.len(), "committing results failed; giving them back");
                    break Err(e);
                }
            }
        };
        if outcome.is_ok() {
            // Published after the commit: a consumer never sees a result the store lacks. A
            // publish that fails loses no data (it is stored); consumers catch up from the store.
            if let Err(e) =
                pingtower_bus::publish_json(self.bus.as_ref(), topics::CHECK_RESULTS, &results)
                    .await
            {
                tracing::warn!(error = %e, "publishing committed results failed");
            }
        }
        for job in &mut jobs {
            if let Some(done) = job.done.take() {
                let answer = match &outcome {
                    Ok(()) => Ok(()),
                    Err(e) => Err(EngineError::NotCommitted(e.to_string())),
                };
                // The producer may have stopped waiting; the results are committed either way.
                let _ = done.send(answer);
            }
        }
    }
}
