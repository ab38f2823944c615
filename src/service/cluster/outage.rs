//! Waiting out a database that is away: pauses that double from 100 ms
//! up to a ceiling, so a short outage costs little and a long one does not
//! hammer the server as it comes back.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// The next pause of a doubling wait.
#[derive(Debug, Clone)]
pub struct Backoff {
    pause: Duration,
    most: Duration,
}

impl Backoff {
    /// Pauses from 100 ms, doubling up to `most`.
    pub fn new(most: Duration) -> Self {
        Backoff { pause: FIRST_PAUSE, most }
    }

    /// The pause to take now; the one after is twice as long.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.pause;
        self.pause = (pause * 2).min(self.most);
        pause
    }

    /// Back to the first pause, after a call that answered.
    pub fn reset(&mut self) {
        self.pause = FIRST_PAUSE;
    }
}

/// `call` again after each error that `wait_out` says to wait out (the
/// database away, and the caller still wanting the answer), with pauses of
/// a [`Backoff`] up to `most`; any other answer is returned.
pub async fn outlasting<T, E: Display, F: Future<Output = Result<T, E>>>(
    doing: &str,
    most: Duration,
    mut call: impl FnMut() -> F,
    mut wait_out: impl FnMut(&E) -> bool,
) -> Result<T, E> {
    let mut backoff = Backoff::new(most);
    loop {
        match call().await {
            Err(e) if wait_out(&e) => {
                let pause = backoff.next_pause();
                tracing::warn!("{doing}: {e}; again in {pause:?}");
                tokio::time::sleep(pause).await;
            }
            answer => return answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(500));
        let pauses: Vec<u128> = (0..5).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), FIRST_PAUSE);
    }

    #[tokio::test]
    async fn errors_waited_out_are_called_again_and_others_returned() {
        let mut calls = 0;
        let answer: Result<u32, String> = outlasting(
            "testing",
            Duration::from_secs(1),
            || {
                calls += 1;
                let n = calls;
                async move {
                    match n {
                        1 | 2 => Err("away".to_string()),
                        3 => Err("broken".to_string()),
                        _ => Ok(n),
                    }
                }
            },
            |e| e == "away",
        )
        .await;
        assert_eq!(answer, Err("broken".to_string()));
        assert_eq!(calls, 3);
    }
}
