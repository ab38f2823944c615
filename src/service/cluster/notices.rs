//! The cluster's notifications: a connection that `LISTEN`s on the
//! `cvm_jobs` channel (re-opened with backoff when it drops) and hands each
//! job change to whoever waits: idle workers, running jobs' cancellation,
//! servers' Await streams.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

use super::outage::Backoff;
use super::ClusterError;
use crate::service::proto::{JobKind, JobState};

/// A change of one job, as the trigger tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    pub job: u64,
    pub state: JobState,
    pub kind: JobKind,
    pub cancel_requested: bool,
}

/// What a waiter hears: a job's change, or that notices may have been
/// missed (the connection dropped, or the waiter fell behind), so it must
/// look at the database again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    Notice(Notice),
    Missed,
}

/// The notifications' fan-out; cheap to clone.
#[derive(Clone)]
pub struct Notices {
    sender: broadcast::Sender<Heard>,
}

/// How many notices a slow waiter may fall behind by before it hears
/// [`Heard::Missed`].
const BACKLOG: usize = 4096;

impl Notices {
    pub(super) fn new() -> Notices {
        Notices { sender: broadcast::channel(BACKLOG).0 }
    }

    pub fn subscribe(&self) -> Waiter {
        Waiter { receiver: self.sender.subscribe() }
    }

    fn tell(&self, heard: Heard) {
        let _ = self.sender.send(heard);
    }
}

/// One waiter's view of the notices.
pub struct Waiter {
    receiver: broadcast::Receiver<Heard>,
}

impl Waiter {
    /// The next notice, or None after `timeout` (a waiter then looks at the
    /// database anyway: notices are a wake-up, never the only source).
    pub async fn next(&mut self, timeout: Duration) -> Option<Heard> {
        match tokio::time::timeout(timeout, self.receiver.recv()).await {
            Ok(Ok(heard)) => Some(heard),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => Some(Heard::Missed),
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => None,
        }
    }
}

/// Start listening; returns once the first `LISTEN` is in place, so a
/// change committed after this is heard.
pub(super) async fn listen(url: String, notices: Notices) -> Result<(), ClusterError> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut backoff = Backoff::new(Duration::from_secs(10));
        loop {
            let ended = listen_once(&url, &notices, &mut ready).await;
            if ended.is_ok() {
                backoff.reset();
            }
            let pause = backoff.next_pause();
            if let Err(e) = ended {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!("listening to the cluster's database: {e}; again in {pause:?}");
            }
            // Anything told while no one listened is missed.
            notices.tell(Heard::Missed);
            tokio::time::sleep(pause).await;
        }
    });
    ready_rx.await.unwrap_or_else(|_| Err(ClusterError::Schema("the listener stopped".into())))
}

/// One connection's life: LISTEN, then hand on notifications until it ends.
async fn listen_once(
    url: &str,
    notices: &Notices,
    ready: &mut Option<tokio::sync::oneshot::Sender<Result<(), ClusterError>>>,
) -> Result<(), ClusterError> {
    let (client, mut connection) = super::connect::connect(url, "connecting to listen").await?;
    let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(message)) => {
                    if messages_tx.send(message).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("the cluster's notification connection: {e}");
                    return;
                }
                None => return,
            }
        }
    });
    client.batch_execute("LISTEN cvm_jobs").await.map_err(|e| ClusterError::db("listening for job changes", e))?;
    if let Some(ready) = ready.take() {
        let _ = ready.send(Ok(()));
    }
    while let Some(message) = messages.recv().await {
        if let AsyncMessage::Notification(n) = message {
            match parse(n.payload()) {
                Some(notice) => notices.tell(Heard::Notice(notice)),
                None => tracing::warn!("a job notification that does not parse: {:?}", n.payload()),
            }
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// 'id:state:kind:cancel'.
fn parse(payload: &str) -> Option<Notice> {
    let mut parts = payload.split(':');
    let job = parts.next()?.parse().ok()?;
    let state = JobState::try_from(parts.next()?.parse::<i32>().ok()?).ok()?;
    let kind = JobKind::try_from(parts.next()?.parse::<i32>().ok()?).ok()?;
    let cancel_requested = parts.next()? == "1";
    Some(Notice { job, state, kind, cancel_requested })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_parse() {
        let notice = parse("42:2:3:1").unwrap();
        assert_eq!(notice, Notice { job: 42, state: JobState::Running, kind: JobKind::Hash, cancel_requested: true });
        assert_eq!(parse("42:2:3"), None);
        assert_eq!(parse("x:2:3:0"), None);
        assert_eq!(parse("1:99:3:0"), None);
    }
}
