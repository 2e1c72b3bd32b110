//! A small embedded MQTT 3.1.1 broker for tests and the quickstart.
//!
//! Written on rumqttc's packet codec rather than taken from rumqttd: rumqttd pulls a config
//! system, metrics and tracing, and it is built for a long-running server, not for a test
//! that starts, kills and restarts a broker on the same port in milliseconds. This one keeps
//! every task owned (stopping it ends all of them) and supports what the SDK uses: CONNECT
//! with clean or persistent sessions (kept in memory, lost on [`Broker::stop`] like mosquitto
//! without persistence), SUBSCRIBE/UNSUBSCRIBE with `+`/`#`, PUBLISH at QoS 0/1/2 in both
//! directions with at most 20 unacknowledged messages per client (like mosquitto's
//! `max_inflight_messages`; the rest wait in order), retained messages, PING and DISCONNECT.
//! User names and passwords are checked only after [`Broker::require_credentials`].
//!
//! Memory stays bounded whatever the clients do. Each subscriber has one queue of messages
//! waiting to be sent, at most [`DEFAULT_MAX_QUEUED`] of them and [`DEFAULT_MAX_QUEUED_BYTES`]
//! of payload (see [`Broker::set_max_queued_messages`], [`Broker::set_max_queued_bytes`]);
//! like mosquitto's `max_queued_messages` and `max_queued_bytes`, a message routed to a full
//! queue is dropped, counted in [`Broker::dropped_messages`] and noticed in a
//! `log::warn!` once per overflow (the overflow ends when the queue empties). The publisher is
//! never held up by a slow subscriber. At most about 64 KiB of packets wait in a connection's
//! write buffer; beyond 1 MiB (acknowledgements to a client that sends but does not read) the
//! broker stops reading from that client until it reads.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let mut broker = ecci_transport::broker::Broker::start().await?;
//! let port = broker.port(); // connect MqttTransport to 127.0.0.1:port
//! broker.stop().await; // drop every connection and session
//! broker.restart().await?; // same port again
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ecci_proto::topic::filter_matches;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, PubRel, Publish, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::codec::{self, Decoded};
use crate::types::QoS;

/// Most unacknowledged messages the broker sends one client.
const BROKER_IN_FLIGHT: usize = 20;
/// The default most messages waiting for one subscriber (see [`Broker::set_max_queued_messages`]).
///
/// Ten times mosquitto's 1000, because the embedded broker runs the workspace's tests in
/// debug builds, several at once on a loaded machine, where our subscribers fall further
/// behind than against mosquitto: the conformance burst (5000 QoS 2 messages back to back)
/// queued up to 2,740 messages for its subscriber, and a broker restart mid-stream kept
/// 1,980 for an absent persistent session; both must lose nothing. 10,000 leaves room, and
/// still bounds a stalled subscriber. [`Broker::set_max_queued_messages`] with 1000
/// behaves as mosquitto does.
pub const DEFAULT_MAX_QUEUED: usize = 10_000;
/// The default most payload bytes waiting for one subscriber (see
/// [`Broker::set_max_queued_bytes`]): 256 MiB, so a stalled subscriber costs the broker at
/// most this plus its 20 messages in flight. mosquitto's `max_queued_bytes` has no limit by
/// default.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 256 * 1024 * 1024;
/// Packets are taken from the queue while the write buffer holds less than this.
const WRITE_HIGH: usize = 64 * 1024;
/// The connection stops reading while its write buffer holds more than this.
const READ_PAUSE: usize = 1024 * 1024;
const MAX_PACKET: usize = 268_435_460;

/// A message as the broker routes it.
#[derive(Clone, Debug)]
struct Routed {
    topic: String,
    payload: Bytes,
    qos: QoS,
    retain: bool,
}

#[derive(Debug)]
enum ToConn {
    /// Another connection took over the session, or the broker kicks everyone.
    Close,
    /// Acknowledge and route what was withheld.
    Release,
    /// Stop reading and writing, without closing.
    Freeze,
}

/// The connection a session is attached to.
#[derive(Debug)]
struct Attached {
    id: u64,
    tx: mpsc::UnboundedSender<ToConn>,
    /// Woken when a message joins the session's queue.
    wake: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Session {
    conn: Option<Attached>,
    subs: Vec<(String, QoS)>,
    clean: bool,
    /// Messages waiting to be sent, at most `State::max_queued`: taken by the connection
    /// as in-flight slots free up, kept (QoS ≥ 1 only) while a persistent session is away.
    queued: VecDeque<Routed>,
    /// Payload bytes in `queued`, at most `State::max_queued_bytes` (or one message).
    queued_bytes: usize,
    /// Messages dropped in the current overflow (from the first drop until the queue
    /// empties), if one is going on.
    overflow: Option<u64>,
    /// A disconnected persistent session's unacknowledged messages, by packet id, and
    /// whether PUBREC came; sent again with the same ids on reconnect.
    in_flight: BTreeMap<u16, (Routed, bool)>,
    last_pkid: u16,
    /// A disconnected persistent session's inbound QoS 2 packet ids received and not yet
    /// released: a PUBLISH sent again with one of them is acknowledged, not routed again
    /// (as mosquitto keeps them).
    incoming_qos2: HashSet<u16>,
}

#[derive(Debug)]
struct State {
    sessions: HashMap<String, Session>,
    retained: BTreeMap<String, Routed>,
    next_conn: u64,
    withhold: bool,
    /// When set, CONNECT must carry this user name and password.
    credentials: Option<(String, String)>,
    /// The most QoS ≥ 1 messages one connection had unacknowledged at once.
    max_unacked: usize,
    /// The most messages one session's queue may hold.
    max_queued: usize,
    /// The most payload bytes one session's queue may hold.
    max_queued_bytes: usize,
    /// How many more QoS 2 messages are to be sent with the packet id of one still in
    /// flight (fault injection: [`Broker::reuse_live_packet_ids`]).
    reuse_ids: usize,
    /// The longest any session's queue has been.
    max_queued_seen: usize,
    /// Messages dropped at a full queue.
    dropped: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            sessions: HashMap::new(),
            retained: BTreeMap::new(),
            next_conn: 0,
            withhold: false,
            credentials: None,
            max_unacked: 0,
            max_queued: DEFAULT_MAX_QUEUED,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            reuse_ids: 0,
            max_queued_seen: 0,
            dropped: 0,
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // A panic in a connection task must not take the broker down with it.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running embedded broker on `127.0.0.1`; dropping it stops it.
#[derive(Debug)]
pub struct Broker {
    port: u16,
    state: Shared,
    accept: Option<(JoinHandle<()>, watch::Sender<bool>)>,
    /// QoS ≥ 1 messages withheld now, over all connections.
    withheld: Arc<watch::Sender<usize>>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Broker {
    /// Starts a broker on a free loopback port.
    pub async fn start() -> io::Result<Broker> {
        Broker::start_on(0).await
    }

    /// Starts a broker on `127.0.0.1:port` (0: a free one).
    pub async fn start_on(port: u16) -> io::Result<Broker> {
        let mut broker = Broker {
            port,
            state: Shared::default(),
            accept: None,
            withheld: Arc::new(watch::Sender::new(0)),
            #[cfg(feature = "tls")]
            tls: None,
        };
        broker.listen().await?;
        Ok(broker)
    }

    /// Starts a TLS broker on a free loopback port with this certificate chain and private
    /// key (PEM).
    #[cfg(feature = "tls")]
    pub async fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Broker> {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::{ServerConfig, crypto::ring::default_provider};
        let bad =
            |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad(&e))?;
        let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| bad(&e))?;
        let mut broker = Broker {
            port: 0,
            state: Shared::default(),
            accept: None,
            withheld: Arc::new(watch::Sender::new(0)),
            tls: Some(Arc::new(config)),
        };
        broker.listen().await?;
        Ok(broker)
    }

    async fn listen(&mut self) -> io::Result<()> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).await?;
        self.port = listener.local_addr()?.port();
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::clone(&self.state);
        let withheld = Arc::clone(&self.withheld);
        #[cfg(feature = "tls")]
        let task = accept(listener, shared, withheld, stop_rx, self.tls.clone());
        #[cfg(not(feature = "tls"))]
        let task = accept(listener, shared, withheld, stop_rx);
        self.accept = Some((tokio::spawn(task), stop_tx));
        Ok(())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.accept.is_some()
    }

    /// Stops listening and drops every connection, session and retained message, like a
    /// mosquitto without persistence that is killed. Does nothing when already stopped.
    pub async fn stop(&mut self) {
        if let Some((accept, _)) = self.accept.take() {
            accept.abort();
            // Aborted on purpose; its connection tasks end with it.
            let _ = accept.await;
        }
        let mut state = lock(&self.state);
        *state = State {
            withhold: state.withhold,
            credentials: state.credentials.take(),
            max_queued: state.max_queued,
            max_queued_bytes: state.max_queued_bytes,
            max_queued_seen: state.max_queued_seen,
            dropped: state.dropped,
            ..State::default()
        };
        drop(state);
        self.withheld.send_replace(0);
    }

    /// Stops listening and closes every connection, but keeps persistent sessions (with the
    /// messages owed to them) and retained messages, like a mosquitto with `persistence true`
    /// that is restarted. Does nothing when already stopped.
    pub async fn stop_keeping_sessions(&mut self) {
        if let Some((accept, stop)) = self.accept.take() {
            stop.send_replace(true);
            // It ends once every connection has saved its session.
            let _ = accept.await;
        }
    }

    /// Starts again on the same port after [`stop`](Broker::stop).
    pub async fn restart(&mut self) -> io::Result<()> {
        if self.accept.is_none() {
            self.listen().await?;
        }
        Ok(())
    }

    /// Stops reading from and writing to every current connection without closing it, as a
    /// network partition does: clients can only notice by their keep-alive. New connections
    /// work normally.
    pub fn freeze_all(&self) {
        tell_all(&lock(&self.state), || ToConn::Freeze);
    }

    /// Drops every client connection but keeps running (and keeps persistent sessions), as
    /// when the network fails.
    pub fn kick_all(&self) {
        tell_all(&lock(&self.state), || ToConn::Close);
    }

    /// While `true`, QoS ≥ 1 messages from clients are neither acknowledged nor passed on;
    /// turning it off acknowledges and routes them. Withheld messages die with their
    /// connection, as if never received.
    pub fn withhold_acks(&self, withhold: bool) {
        let mut state = lock(&self.state);
        state.withhold = withhold;
        if !withhold {
            tell_all(&state, || ToConn::Release);
        }
    }

    /// Waits until at least `n` messages are withheld (see [`withhold_acks`](Self::withhold_acks)).
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn wait_withheld(&self, n: usize) {
        let mut rx = self.withheld.subscribe();
        // The sender lives as long as `self`.
        let _ = rx.wait_for(|w| *w >= n).await;
    }

    /// The most QoS ≥ 1 messages one connection has had unacknowledged at the broker at once
    /// (while acknowledgements were withheld), since start.
    pub fn max_unacked_seen(&self) -> usize {
        lock(&self.state).max_unacked
    }

    /// From now on, refuse connections (CONNACK return code 4) that do not carry this user
    /// name and password.
    pub fn require_credentials(&self, user: &str, password: &str) {
        lock(&self.state).credentials = Some((user.to_owned(), password.to_owned()));
    }

    /// Sets the most messages that may wait for one subscriber (default
    /// [`DEFAULT_MAX_QUEUED`]; mosquitto's default is 1000), counting those a persistent
    /// session is owed while away but not the 20 in flight. A message routed to a full
    /// queue is dropped and counted in [`dropped_messages`](Self::dropped_messages). Unlike
    /// mosquitto, 0 is not "no limit" (this broker has none): it drops every message that
    /// finds no room. Applies to messages routed from now on; survives [`stop`](Self::stop).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let broker = ecci_transport::broker::Broker::start().await?;
    /// broker.set_max_queued_messages(1000); // as mosquitto
    /// assert_eq!(broker.dropped_messages(), 0);
    /// # Ok(()) }
    /// ```
    pub fn set_max_queued_messages(&self, max: usize) {
        lock(&self.state).max_queued = max;
    }

    /// Sets the most payload bytes that may wait for one subscriber (default
    /// [`DEFAULT_MAX_QUEUED_BYTES`]), as mosquitto's `max_queued_bytes`: a message that
    /// would take a non-empty queue beyond it is dropped and counted in
    /// [`dropped_messages`](Self::dropped_messages); an empty queue always takes one
    /// message. Applies to messages routed from now on; survives [`stop`](Self::stop).
    pub fn set_max_queued_bytes(&self, max: usize) {
        lock(&self.state).max_queued_bytes = max;
    }

    /// Fault injection: the next `n` QoS 2 messages the broker sends a client while another
    /// QoS 2 message to it is unacknowledged (no PUBREC yet) go out with that message's
    /// packet id and without the DUP flag, as mosquitto does with `max_queued_messages 0`
    /// and a slow subscriber. A correct client must drop them (MQTT 3.1.1 §4.3.3): they
    /// are lost, and the client can only count them.
    pub fn reuse_live_packet_ids(&self, n: usize) {
        lock(&self.state).reuse_ids = n;
    }

    /// How many messages were dropped because their subscriber's queue was full, since the
    /// broker was created (see [`set_max_queued_messages`](Self::set_max_queued_messages)).
    pub fn dropped_messages(&self) -> u64 {
        lock(&self.state).dropped
    }

    /// The most messages that waited for one subscriber at once, since the broker was
    /// created; never more than the limit.
    pub fn max_queued_seen(&self) -> usize {
        lock(&self.state).max_queued_seen
    }

    /// How many messages wait in subscribers' queues now, over every session (connected
    /// or not); not counting the messages in flight.
    pub fn queued_messages(&self) -> usize {
        lock(&self.state)
            .sessions
            .values()
            .map(|s| s.queued.len())
            .sum()
    }

    /// How many clients are connected.
    pub fn connected_clients(&self) -> usize {
        lock(&self.state)
            .sessions
            .values()
            .filter(|s| s.conn.is_some())
            .count()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some((accept, _)) = self.accept.take() {
            accept.abort();
        }
    }
}

fn tell_all(state: &State, what: impl Fn() -> ToConn) {
    for session in state.sessions.values() {
        if let Some(attached) = &session.conn {
            let _ = attached.tx.send(what());
        }
    }
}

async fn accept(
    listener: TcpListener,
    state: Shared,
    withheld: Arc<watch::Sender<usize>>,
    mut stop: watch::Receiver<bool>,
    #[cfg(feature = "tls")] tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) {
    #[cfg(feature = "tls")]
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    // Dropping the set (when this task is aborted) aborts every connection task.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = listener.accept() => {
                if let Ok((stream, _)) = r {
                    let _ = stream.set_nodelay(true);
                    let (state, withheld) = (Arc::clone(&state), Arc::clone(&withheld));
                    #[cfg(feature = "tls")]
                    if let Some(tls) = tls.clone() {
                        conns.spawn(async move {
                            let handshake = tokio::time::timeout(Duration::from_secs(10), tls.accept(stream));
                            if let Ok(Ok(stream)) = handshake.await {
                                serve(stream, state, withheld).await;
                            }
                        });
                        continue;
                    }
                    conns.spawn(serve(stream, state, withheld));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    tell_all(&lock(&state), || ToConn::Close);
    while conns.join_next().await.is_some() {}
}

/// Sends `msg` to every session subscribed to its topic, at the lower of the two QoS.
fn route(state: &mut State, msg: &Routed) {
    if msg.retain {
        if msg.payload.is_empty() {
            state.retained.remove(&msg.topic);
        } else {
            state.retained.insert(msg.topic.clone(), msg.clone());
        }
    }
    let mut limits = Limits::of(state);
    for (client_id, session) in &mut state.sessions {
        let granted = session
            .subs
            .iter()
            .filter(|(f, _)| filter_matches(f, &msg.topic))
            .map(|(_, q)| *q)
            .max();
        let Some(granted) = granted else { continue };
        let copy = Routed {
            qos: msg.qos.min(granted),
            retain: false,
            ..msg.clone()
        };
        if session.conn.is_some() || (!session.clean && copy.qos != QoS::AtMostOnce) {
            limits.enqueue(client_id, session, copy);
        }
    }
    limits.save(state);
}

/// The queue limit and the counters [`Limits::enqueue`] updates, apart from the sessions
/// so that both can be borrowed at once.
struct Limits {
    max_queued: usize,
    max_queued_bytes: usize,
    max_queued_seen: usize,
    dropped: u64,
}

impl Limits {
    fn of(state: &State) -> Limits {
        Limits {
            max_queued: state.max_queued,
            max_queued_bytes: state.max_queued_bytes,
            max_queued_seen: state.max_queued_seen,
            dropped: state.dropped,
        }
    }

    fn save(self, state: &mut State) {
        state.max_queued_seen = self.max_queued_seen;
        state.dropped = self.dropped;
    }

    /// Queues `msg` for the session and wakes its connection, or drops and counts it when
    /// the queue is full.
    fn enqueue(&mut self, client_id: &str, session: &mut Session, msg: Routed) {
        let too_many_bytes = !session.queued.is_empty()
            && session.queued_bytes + msg.payload.len() > self.max_queued_bytes;
        if session.queued.len() >= self.max_queued || too_many_bytes {
            self.dropped += 1;
            let dropped = session.overflow.get_or_insert_with(|| {
                log::warn!(
                    "embedded broker: queue of client {client_id:?} is full ({} messages, \
                     {} bytes); dropping messages for it until it catches up",
                    session.queued.len(),
                    session.queued_bytes
                );
                0
            });
            *dropped += 1;
            return;
        }
        session.queued_bytes += msg.payload.len();
        session.queued.push_back(msg);
        self.max_queued_seen = self.max_queued_seen.max(session.queued.len());
        if let Some(attached) = &session.conn {
            attached.wake.notify_one();
        }
    }
}

/// One client connection.
struct Conn {
    id: u64,
    client_id: String,
    state: Shared,
    wbuf: BytesMut,
    /// The last pump left messages queued because the write buffer was full.
    stalled: bool,
    in_flight: BTreeMap<u16, (Routed, bool)>,
    last_pkid: u16,
    incoming_qos2: HashSet<u16>,
    /// Messages received and neither acknowledged nor routed yet, with their acks.
    withheld: Vec<(Routed, Packet)>,
    withheld_total: Arc<watch::Sender<usize>>,
}

async fn serve<S>(mut stream: S, state: Shared, withheld_total: Arc<watch::Sender<usize>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let connect = loop {
        match codec::decode(&mut rbuf, MAX_PACKET) {
            Ok(Decoded::Packet(Packet::Connect(c))) => break c,
            Ok(Decoded::NeedMore(n)) => {
                rbuf.reserve(n);
                let read =
                    tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut rbuf));
                match read.await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
            }
            _ => return,
        }
    };
    let refused = {
        let state = lock(&state);
        state.credentials.as_ref().is_some_and(|(user, password)| {
            connect
                .login
                .as_ref()
                .is_none_or(|l| l.username != *user || l.password != *password)
        })
    };
    if refused {
        let mut buf = BytesMut::new();
        let ack = ConnAck::new(ConnectReturnCode::BadUserNamePassword, false);
        if codec::encode(&Packet::ConnAck(ack), &mut buf).is_ok() {
            let _ = stream.write_all(&buf).await;
        }
        return;
    }
    // Only the test switches (close, release, freeze) send here, once per call: messages
    // go through the session's bounded queue.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    let mut conn = Conn {
        id: 0,
        client_id: connect.client_id.clone(),
        state: Arc::clone(&state),
        wbuf: BytesMut::with_capacity(64 * 1024),
        stalled: false,
        in_flight: BTreeMap::new(),
        last_pkid: 0,
        incoming_qos2: HashSet::new(),
        withheld: Vec::new(),
        withheld_total,
    };
    let session_present = {
        let mut st = lock(&state);
        st.next_conn += 1;
        conn.id = st.next_conn;
        if conn.client_id.is_empty() {
            conn.client_id = format!("embedded-{}", conn.id);
        }
        let old = st.sessions.remove(&conn.client_id);
        if let Some(old_conn) = old.as_ref().and_then(|s| s.conn.as_ref()) {
            let _ = old_conn.tx.send(ToConn::Close);
        }
        let (mut session, present) = match old {
            Some(s) if !connect.clean_session && !s.clean => (s, true),
            _ => (Session::default(), false),
        };
        session.clean = connect.clean_session;
        session.conn = Some(Attached {
            id: conn.id,
            tx,
            wake: Arc::clone(&wake),
        });
        conn.in_flight = std::mem::take(&mut session.in_flight);
        conn.last_pkid = session.last_pkid;
        conn.incoming_qos2 = std::mem::take(&mut session.incoming_qos2);
        st.sessions.insert(conn.client_id.clone(), session);
        present
    };
    let ack = ConnAck::new(ConnectReturnCode::Success, session_present);
    if conn.put(&Packet::ConnAck(ack)).is_err() {
        return;
    }
    if conn.resend().is_err() {
        return;
    }
    conn.pump();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut frozen = false;
    loop {
        if rbuf.capacity() - rbuf.len() < 8 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        let go_on = tokio::select! {
            r = wr.write_buf(&mut conn.wbuf), if !conn.wbuf.is_empty() && !frozen => {
                if conn.stalled && conn.wbuf.len() < WRITE_HIGH {
                    conn.pump();
                }
                matches!(r, Ok(n) if n > 0)
            }
            // A client that sends without reading its acknowledgements is not read from
            // either, so that they cannot pile up here.
            r = rd.read_buf(&mut rbuf), if !frozen && conn.wbuf.len() < READ_PAUSE => match r {
                Ok(n) if n > 0 => conn.incoming(&mut rbuf),
                _ => false,
            },
            () = wake.notified() => {
                conn.pump();
                true
            }
            m = rx.recv() => match m {
                Some(ToConn::Release) => conn.release(),
                Some(ToConn::Freeze) => {
                    frozen = true;
                    true
                }
                Some(ToConn::Close) | None => false,
            },
        };
        if !go_on {
            break;
        }
    }
    conn.leave();
}

impl Conn {
    fn put(&mut self, packet: &Packet) -> Result<(), String> {
        codec::encode(packet, &mut self.wbuf)
    }

    /// Sends a resumed session's unacknowledged messages again, with their packet ids.
    fn resend(&mut self) -> Result<(), String> {
        let mut packets = Vec::with_capacity(self.in_flight.len());
        for (pkid, (msg, received)) in &self.in_flight {
            if *received {
                packets.push(Packet::PubRel(PubRel::new(*pkid)));
            } else {
                let mut p = Publish::from_bytes(
                    msg.topic.clone(),
                    codec::to_wire(msg.qos),
                    msg.payload.clone(),
                );
                p.pkid = *pkid;
                p.dup = true;
                packets.push(Packet::Publish(p));
            }
        }
        packets.iter().try_for_each(|p| self.put(p))
    }

    /// Sends queued messages, in order, while there are free in-flight slots (for QoS ≥ 1)
    /// and room in the write buffer.
    fn pump(&mut self) {
        let mut batch = Vec::new();
        let mut reuse;
        {
            let mut st = lock(&self.state);
            reuse = std::mem::take(&mut st.reuse_ids);
            let Some(session) = st.sessions.get_mut(&self.client_id) else {
                return;
            };
            if session.conn.as_ref().is_none_or(|a| a.id != self.id) {
                return; // taken over by a newer connection
            }
            let mut free = BROKER_IN_FLIGHT.saturating_sub(self.in_flight.len());
            let mut buffered = self.wbuf.len();
            while buffered < WRITE_HIGH {
                let Some(next) = session.queued.front() else {
                    break;
                };
                if next.qos != QoS::AtMostOnce {
                    if free == 0 {
                        break;
                    }
                    free -= 1;
                }
                buffered += next.topic.len() + next.payload.len() + 8;
                session.queued_bytes -= next.payload.len();
                batch.extend(session.queued.pop_front());
            }
            self.stalled = buffered >= WRITE_HIGH && !session.queued.is_empty();
            if session.queued.is_empty() {
                if let Some(dropped) = session.overflow.take() {
                    log::info!(
                        "embedded broker: client {:?} caught up after {dropped} messages \
                         were dropped for it",
                        self.client_id
                    );
                }
            }
        }
        for msg in batch {
            let mut p = Publish::from_bytes(
                msg.topic.clone(),
                codec::to_wire(msg.qos),
                msg.payload.clone(),
            );
            p.retain = msg.retain;
            let live = if reuse > 0 && msg.qos == QoS::ExactlyOnce {
                self.in_flight
                    .iter()
                    .rev()
                    .find(|(_, (m, received))| m.qos == QoS::ExactlyOnce && !received)
                    .map(|(id, _)| *id)
            } else {
                None
            };
            if let Some(live) = live {
                // Lost, as mosquitto loses it: never in flight, so never sent again.
                reuse -= 1;
                p.pkid = live;
            } else if msg.qos != QoS::AtMostOnce {
                p.pkid = self.next_pkid();
                self.in_flight.insert(p.pkid, (msg, false));
            }
            // Sizes were checked when the message came in.
            let _ = self.put(&Packet::Publish(p));
        }
        if reuse > 0 {
            lock(&self.state).reuse_ids += reuse;
        }
    }

    fn next_pkid(&mut self) -> u16 {
        loop {
            self.last_pkid = self.last_pkid.wrapping_add(1);
            if self.last_pkid != 0 && !self.in_flight.contains_key(&self.last_pkid) {
                return self.last_pkid;
            }
        }
    }

    /// Handles every whole packet; `false` ends the connection.
    fn incoming(&mut self, rbuf: &mut BytesMut) -> bool {
        loop {
            match codec::decode(rbuf, MAX_PACKET) {
                Ok(Decoded::Packet(p)) => {
                    if !self.packet(p) {
                        return false;
                    }
                }
                Ok(Decoded::NeedMore(n)) => {
                    rbuf.reserve(n);
                    return true;
                }
                Err(_) => return false,
            }
        }
    }

    fn packet(&mut self, packet: Packet) -> bool {
        let sent = match packet {
            Packet::Publish(p) => {
                let qos = codec::from_wire(p.qos);
                let fresh = qos != QoS::ExactlyOnce || self.incoming_qos2.insert(p.pkid);
                let msg = Routed {
                    topic: p.topic,
                    payload: p.payload,
                    qos,
                    retain: p.retain,
                };
                let ack = match qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(p.pkid))),
                    QoS::ExactlyOnce => Some(Packet::PubRec(PubRec::new(p.pkid))),
                };
                let mut state = lock(&self.state);
                match ack {
                    Some(ack) if state.withhold => {
                        self.withheld.push((msg, ack));
                        state.max_unacked = state.max_unacked.max(self.withheld.len());
                        self.withheld_total.send_modify(|n| *n += 1);
                        Ok(())
                    }
                    ack => {
                        if fresh {
                            route(&mut state, &msg);
                        }
                        drop(state);
                        ack.map_or(Ok(()), |ack| self.put(&ack))
                    }
                }
            }
            Packet::PubRel(PubRel { pkid }) => {
                self.incoming_qos2.remove(&pkid);
                self.put(&Packet::PubComp(PubComp::new(pkid)))
            }
            Packet::PubAck(PubAck { pkid }) | Packet::PubComp(PubComp { pkid }) => {
                self.in_flight.remove(&pkid);
                self.pump();
                Ok(())
            }
            Packet::PubRec(PubRec { pkid }) => {
                if let Some(entry) = self.in_flight.get_mut(&pkid) {
                    entry.1 = true;
                }
                self.put(&Packet::PubRel(PubRel::new(pkid)))
            }
            Packet::Subscribe(s) => {
                let mut codes = Vec::with_capacity(s.filters.len());
                let mut retained = Vec::new();
                {
                    let mut st = lock(&self.state);
                    let st = &mut *st;
                    let Some(session) = st.sessions.get_mut(&self.client_id) else {
                        return false;
                    };
                    for f in s.filters {
                        let qos = codec::from_wire(f.qos);
                        session.subs.retain(|(g, _)| *g != f.path);
                        for r in st.retained.values() {
                            if filter_matches(&f.path, &r.topic) {
                                retained.push(Routed {
                                    qos: r.qos.min(qos),
                                    ..r.clone()
                                });
                            }
                        }
                        session.subs.push((f.path, qos));
                        codes.push(SubscribeReasonCode::Success(f.qos));
                    }
                }
                let r = self.put(&Packet::SubAck(SubAck::new(s.pkid, codes)));
                let mut st = lock(&self.state);
                let mut limits = Limits::of(&st);
                if let Some(session) = st.sessions.get_mut(&self.client_id) {
                    for msg in retained {
                        limits.enqueue(&self.client_id, session, msg);
                    }
                }
                limits.save(&mut st);
                drop(st);
                self.pump();
                r
            }
            Packet::Unsubscribe(u) => {
                if let Some(session) = lock(&self.state).sessions.get_mut(&self.client_id) {
                    session.subs.retain(|(f, _)| !u.topics.contains(f));
                }
                self.put(&Packet::UnsubAck(UnsubAck::new(u.pkid)))
            }
            Packet::PingReq => self.put(&Packet::PingResp),
            _ => return false,
        };
        sent.is_ok()
    }

    /// Acknowledges and routes the withheld messages.
    fn release(&mut self) -> bool {
        let withheld = std::mem::take(&mut self.withheld);
        self.withheld_total
            .send_modify(|n| *n = n.saturating_sub(withheld.len()));
        for (msg, ack) in withheld {
            route(&mut lock(&self.state), &msg);
            if self.put(&ack).is_err() {
                return false;
            }
        }
        true
    }

    /// The connection ended: a clean session goes, a persistent one keeps what it was owed.
    fn leave(mut self) {
        let lost = self.withheld.len();
        // Withheld messages die with the connection, as if never received.
        for (_, ack) in &self.withheld {
            if let Packet::PubRec(PubRec { pkid }) = ack {
                self.incoming_qos2.remove(pkid);
            }
        }
        self.withheld_total
            .send_modify(|n| *n = n.saturating_sub(lost));
        let mut st = lock(&self.state);
        let Some(session) = st.sessions.get_mut(&self.client_id) else {
            return;
        };
        if session.conn.as_ref().is_none_or(|a| a.id != self.id) {
            return; // taken over by a newer connection
        }
        if session.clean {
            st.sessions.remove(&self.client_id);
            return;
        }
        session.conn = None;
        session.in_flight = self.in_flight;
        session.last_pkid = self.last_pkid;
        session.incoming_qos2 = self.incoming_qos2;
        session.queued.retain(|m| m.qos != QoS::AtMostOnce);
        session.queued_bytes = session.queued.iter().map(|m| m.payload.len()).sum();
    }
}
