//! A bound on the operator's requests in flight to the API server, watches and the Lease aside.
//!
//! The API server shares its CPU among the requests it is serving: every request in flight
//! slows every other client's. Sixty-four reconciliations at once (which the operator needs
//! to overlap slow mail and waits) would otherwise keep up to sixty-four requests in flight
//! while it onboards, and another client's writes would wait behind them
//! (docs/performance.md). A few requests in flight keep the API server as busy as many do;
//! the others wait here, in the operator, where they cost nobody else anything. A watch lasts
//! as long as the operator does and holds no place; neither does the leader's Lease, whose
//! renewal must not wait behind a queue of reconciliations' writes (a leader that cannot renew
//! in time steps down).
//!
//! A request holds its place until the API server's answer begins (its status and headers):
//! by then the API server has done the request's work. It holds it [`HELD_AT_MOST`] at most: a
//! request that slow is waiting (on a slow admission webhook, a lost connection), not keeping
//! the API server busy, and a few of them must not stop all the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::Request;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

/// The default bound (`--api-requests-in-flight`).
pub const DEFAULT: usize = 4;

/// How long a request holds its place at most; it then goes on without one.
pub const HELD_AT_MOST: Duration = Duration::from_secs(5);

/// Bounds the requests in flight of the service it wraps, watches and Leases aside.
#[derive(Clone)]
pub struct RequestsInFlightLayer {
    places: Arc<Semaphore>,
}

impl RequestsInFlightLayer {
    /// At most `limit` requests in flight (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(limit.max(1))),
        }
    }
}

impl<S> Layer<S> for RequestsInFlightLayer {
    type Service = RequestsInFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestsInFlight {
            inner,
            places: self.places.clone(),
        }
    }
}

/// See [`RequestsInFlightLayer`].
#[derive(Clone)]
pub struct RequestsInFlight<S> {
    inner: S,
    places: Arc<Semaphore>,
}

impl<S, B> Service<Request<B>> for RequestsInFlight<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let unbounded = is_watch(&request) || is_lease(&request);
        // The inner service's future does nothing until it is polled: the request is sent
        // once it has a place.
        let response = self.inner.call(request);
        let places = self.places.clone();
        Box::pin(async move {
            if unbounded {
                return response.await;
            }
            let place = places.acquire_owned().await;
            let mut response = std::pin::pin!(response);
            match tokio::time::timeout(HELD_AT_MOST, &mut response).await {
                Ok(answer) => answer,
                Err(_) => {
                    drop(place);
                    response.await
                }
            }
        })
    }
}

/// Whether `request` is a watch (`?watch=true`, as kube-rs asks; `1` is the same to the API
/// server).
fn is_watch<B>(request: &Request<B>) -> bool {
    request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    })
}

/// Whether `request` is about a Lease (the leader election's).
fn is_lease<B>(request: &Request<B>) -> bool {
    request
        .uri()
        .path()
        .starts_with("/apis/coordination.k8s.io/")
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    /// Answers after a moment (a minute for a path that says `hang`), and counts the requests
    /// it is serving at once.
    #[derive(Clone, Default)]
    struct Slow {
        serving: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Service<Request<()>> for Slow {
        type Response = ();
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            let (serving, most) = (self.serving.clone(), self.most.clone());
            let takes = match request.uri().path().contains("hang") {
                true => Duration::from_secs(60),
                false => Duration::from_millis(10),
            };
            Box::pin(async move {
                let now = serving.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(takes).await;
                serving.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    async fn send_at_once(service: RequestsInFlight<Slow>, uris: Vec<String>) {
        let requests = uris.into_iter().map(|uri| {
            let service = service.clone();
            let request = Request::get(uri).body(()).unwrap();
            tokio::spawn(service.oneshot(request))
        });
        for request in requests.collect::<Vec<_>>() {
            request.await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_requests_than_the_bound_are_in_flight() {
        let slow = Slow::default();
        let service = RequestsInFlightLayer::new(3).layer(slow.clone());
        let uris = (0..20)
            .map(|i| format!("/api/v1/namespaces/n{i}"))
            .collect();
        send_at_once(service, uris).await;
        assert_eq!(slow.most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn watches_and_the_lease_hold_no_place() {
        let slow = Slow::default();
        let service = RequestsInFlightLayer::new(1).layer(slow.clone());
        let uris = (0..5)
            .map(|i| format!("/api/v1/namespaces?watch=true&resourceVersion={i}"))
            .chain(["/api/v1/namespaces?limit=500".to_string()])
            .chain([
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/partner-operator".to_string(),
            ])
            .collect();
        send_at_once(service, uris).await;
        assert_eq!(slow.most.load(Ordering::SeqCst), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_hangs_gives_its_place_up() {
        let slow = Slow::default();
        let service = RequestsInFlightLayer::new(1).layer(slow.clone());
        let hanging = tokio::spawn(
            service
                .clone()
                .oneshot(Request::get("/api/v1/namespaces/hang").body(()).unwrap()),
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = tokio::time::Instant::now();
        service
            .oneshot(Request::get("/api/v1/namespaces/n").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(started.elapsed(), HELD_AT_MOST + Duration::from_millis(9));
        assert!(!hanging.is_finished(), "it goes on without a place");
        hanging.await.unwrap().unwrap();
    }
}
