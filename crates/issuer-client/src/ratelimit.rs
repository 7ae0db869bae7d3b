//! Client-side request rate limit: a token bucket as a tower layer.
//!
//! Written by hand rather than taken from a crate: `tower::limit::RateLimit`
//! is a fixed window (N requests per period, no separate burst), and
//! `governor` keeps its own clock, so tokio's paused time (which the tests use)
//! would not drive it. A token bucket with `qps` refill and `burst` capacity
//! is what client-go's `--kube-api-qps/--kube-api-burst` mean, and is short.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Default sustained rate when `qps` is 0: enough that a node starting 100
/// Pods at once (100 creates, a few deletes) is not throttled.
pub const DEFAULT_QPS: f32 = 50.0;
/// Default burst when `burst` is 0.
pub const DEFAULT_BURST: u32 = 100;

#[derive(Debug)]
struct Bucket {
    qps: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes one token, or says how long until one is available.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// A token bucket shared by every client built from one connection (the
/// driver's own client and the per-Pod token clients).
#[derive(Clone, Debug)]
pub struct RateLimit {
    bucket: Arc<Mutex<Bucket>>,
    qps: f32,
    burst: u32,
}

impl RateLimit {
    /// `qps` requests per second sustained, `burst` at once; 0 (or a
    /// negative or non-finite `qps`) picks [`DEFAULT_QPS`] / [`DEFAULT_BURST`].
    pub fn new(qps: f32, burst: u32) -> Self {
        let qps = if qps.is_finite() && qps > 0.0 {
            qps
        } else {
            DEFAULT_QPS
        };
        let burst = if burst == 0 { DEFAULT_BURST } else { burst };
        Self {
            bucket: Arc::new(Mutex::new(Bucket {
                qps: f64::from(qps),
                capacity: f64::from(burst),
                tokens: f64::from(burst),
                last: Instant::now(),
            })),
            qps,
            burst,
        }
    }

    /// The sustained rate in effect.
    pub fn qps(&self) -> f32 {
        self.qps
    }

    /// The burst in effect.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    fn try_take(&self) -> Result<(), Duration> {
        self.bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_take(Instant::now())
    }
}

impl<S> Layer<S> for RateLimit {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limit: self.clone(),
            sleep: None,
            permit: false,
        }
    }
}

/// The service made by the [`RateLimit`] layer: `poll_ready` waits for a token.
pub struct RateLimited<S> {
    inner: S,
    limit: RateLimit,
    sleep: Option<Pin<Box<Sleep>>>,
    permit: bool,
}

impl<S, Req> Service<Req> for RateLimited<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.permit {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            match self.limit.try_take() {
                Ok(()) => self.permit = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.permit = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    #[derive(Clone)]
    struct Echo;
    impl Service<u32> for Echo {
        type Response = u32;
        type Error = Infallible;
        type Future = std::future::Ready<Result<u32, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: u32) -> Self::Future {
            std::future::ready(Ok(req))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_qps() {
        let limit = RateLimit::new(10.0, 5);
        let mut svc = limit.layer(Echo);
        let start = Instant::now();
        for i in 0..5 {
            assert_eq!(svc.ready().await.unwrap().call(i).await.unwrap(), i);
        }
        assert_eq!(Instant::now(), start, "the burst is not delayed");
        // The sixth waits one refill interval (100 ms at 10 qps).
        svc.ready().await.unwrap().call(5).await.unwrap();
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(99) && waited <= Duration::from_millis(101),
            "{waited:?}"
        );
        // Ten more take about a second.
        for i in 0..10 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(1090) && waited <= Duration::from_millis(1110),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn defaults_let_100_requests_through_at_once() {
        let limit = RateLimit::new(0.0, 0);
        assert_eq!((limit.qps(), limit.burst()), (DEFAULT_QPS, DEFAULT_BURST));
        let mut svc = limit.layer(Echo);
        let start = Instant::now();
        for i in 0..100 {
            svc.ready().await.unwrap().call(i).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
    }
}
