//! The live web view of `ecci dev`: a page on 127.0.0.1 showing the app as a graph of its
//! containers, the latest messages per edge, the platform records, file transfers and
//! error events (bad payloads, messages lost or duplicated by their sequence numbers,
//! fileManager URLs elsewhere than the local store), updated live over server-sent events.
//!
//! Three parts, each with one owner:
//! - [`State`] (in `state.rs`), the bounded model, fed by `ecci dev`'s own MQTT
//!   connection ([`collect`]) and by the object store's request log;
//! - a ticker (inside [`collect`]) that, at most [`UPDATES_PER_SECOND`] times a second and
//!   only when something changed, renders a snapshot into a `watch` channel: the latest
//!   snapshot only, so a slow page skips states instead of queueing them;
//! - the HTTP server ([`Server`], hyper 1, HTTP/1.1 only): `/` the page (HTML, CSS and JS
//!   are `include_str!`ed: no build step, nothing fetched at run time), `/state` the
//!   snapshot as JSON, `/events` the snapshots as server-sent events.
//!
//! hyper is used directly rather than axum: it is already in the tree (the local object
//! store serves with it), and three fixed routes need no router.

mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ecci_files::local::LocalStore;
use ecci_transport::{Event, Events};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;

pub(crate) use state::{Limits, State};

use crate::show::chain;

/// The most snapshots sent to the page per second.
pub(crate) const UPDATES_PER_SECOND: u64 = 5;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// The HTTP server: accepts until dropped (or [`Server::stop`]), every connection a task
/// of its own in a set this server owns.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Listens on 127.0.0.1:`port` (0: a free one) and serves the snapshots of `snapshots`.
    pub(crate) async fn start(
        port: u16,
        snapshots: watch::Receiver<Arc<str>>,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept(listener, snapshots));
        Ok(Server { addr, task })
    }

    /// Where the page is.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection.
    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn accept(listener: TcpListener, snapshots: watch::Receiver<Arc<str>>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: wait, as a server loop should.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let snapshots = snapshots.clone();
        let service = hyper::service::service_fn(move |req| {
            let snapshots = snapshots.clone();
            async move { Ok::<_, Infallible>(respond(&req, snapshots)) }
        });
        connections.spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert(hyper::header::CONTENT_TYPE, v);
    }
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

/// The answer to one request.
fn respond(req: &Request<Incoming>, snapshots: watch::Receiver<Arc<str>>) -> Response<Body> {
    if req.method() != Method::GET {
        return full(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served\n",
        );
    }
    match req.uri().path() {
        "/" | "/index.html" => full(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => full(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        "/app.css" => full(StatusCode::OK, "text/css; charset=utf-8", APP_CSS),
        "/state" => {
            let now = snapshots.borrow().clone();
            full(
                StatusCode::OK,
                "application/json",
                Bytes::from(now.as_bytes().to_vec()),
            )
        }
        "/events" => {
            let events = WatchStream::new(snapshots).map(|s: Arc<str>| {
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!("data: {s}\n\n"))))
            });
            let mut response = Response::new(StreamBody::new(events).boxed_unsync());
            let headers = response.headers_mut();
            headers.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-store"),
            );
            response
        }
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// Feeds `state` from `events` (a connection subscribed to everything the page shows) and
/// from `store`'s request log, and publishes a snapshot into `out` when something changed,
/// at most [`UPDATES_PER_SECOND`] times a second. Runs until `events` ends.
///
/// # Cancel safety
///
/// Cancel-safe: the state is left consistent between messages.
pub(crate) async fn collect(
    state: &mut State,
    events: &mut Events,
    store: Option<&LocalStore>,
    out: &watch::Sender<Arc<str>>,
) {
    if let Some(store) = store {
        state.set_store_origin(&format!("http://{}", store.addr()));
    }
    let start = Instant::now();
    let ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / UPDATES_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sent, mut seen_requests, mut lost) = (u64::MAX, 0usize, false);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Message(m)) => state.message(&m.topic, &m.payload, ms()),
                Some(Event::Disconnected(e)) => {
                    lost = true;
                    state.error(ms(), "connection", &format!("disconnected: {}", chain(&e)));
                }
                Some(Event::ConnectFailed(e)) => {
                    state.error(ms(), "connection", &format!("cannot reconnect: {}", chain(&e)));
                }
                Some(Event::Connected) if lost => {
                    lost = false;
                    let gap = "reconnected: a gap, messages sent while disconnected were not seen";
                    state.error(ms(), "connection", gap);
                }
                Some(Event::TooLarge { topic, size, max }) => {
                    let what = format!("a message of {size} bytes skipped (larger than {max})");
                    state.error(ms(), &topic, &what);
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {
                let now = ms();
                if let Some(store) = store {
                    let requests = store.requests();
                    for r in requests.iter().skip(seen_requests) {
                        if let Some(object) = &r.object {
                            state.store_request(&r.method, object, r.status, now);
                        }
                    }
                    seen_requests = requests.len();
                    for name in state.sizes_wanted() {
                        if let Some(size) = stored_size(store, &name) {
                            state.set_size(&name, size);
                        }
                    }
                }
                state.tick(now);
                if state.version != sent {
                    sent = state.version;
                    let _ = out.send(Arc::from(state.snapshot(now).to_string()));
                }
            }
        }
    }
}

/// The size of the object `name` in `store`, looked up in every bucket (one per app).
fn stored_size(store: &LocalStore, name: &str) -> Option<u64> {
    let buckets = std::fs::read_dir(store.root()).ok()?;
    buckets.flatten().find_map(|b| {
        let bucket = b.file_name().into_string().ok()?;
        let path = store.object_path(&bucket, name).ok()?;
        std::fs::metadata(path).ok().map(|m| m.len())
    })
}
