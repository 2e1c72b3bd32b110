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
//! User names and passwords are accepted but not checked.
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::codec::{self, Decoded};
use crate::types::QoS;

/// Most unacknowledged messages the broker sends one client.
const BROKER_IN_FLIGHT: usize = 20;
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
    Deliver(Routed),
    /// Another connection took over the session, or the broker kicks everyone.
    Close,
}

#[derive(Debug, Default)]
struct Session {
    conn: Option<(u64, mpsc::UnboundedSender<ToConn>)>,
    subs: Vec<(String, QoS)>,
    clean: bool,
    /// Messages for a disconnected persistent session, unacknowledged ones first.
    queued: VecDeque<Routed>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<String, Session>,
    retained: BTreeMap<String, Routed>,
    next_conn: u64,
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
    accept: Option<JoinHandle<()>>,
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
        };
        broker.listen().await?;
        Ok(broker)
    }

    async fn listen(&mut self) -> io::Result<()> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).await?;
        self.port = listener.local_addr()?.port();
        self.accept = Some(tokio::spawn(accept(listener, Arc::clone(&self.state))));
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
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // Aborted on purpose; its connection tasks end with it.
            let _ = accept.await;
        }
        *lock(&self.state) = State::default();
    }

    /// Starts again on the same port after [`stop`](Broker::stop).
    pub async fn restart(&mut self) -> io::Result<()> {
        if self.accept.is_none() {
            self.listen().await?;
        }
        Ok(())
    }

    /// Drops every client connection but keeps running (and keeps persistent sessions), as
    /// when the network fails.
    pub fn kick_all(&self) {
        let state = lock(&self.state);
        for session in state.sessions.values() {
            if let Some((_, tx)) = &session.conn {
                let _ = tx.send(ToConn::Close);
            }
        }
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
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

async fn accept(listener: TcpListener, state: Shared) {
    // Dropping the set (when this task is aborted) aborts every connection task.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                if let Ok((stream, _)) = r {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve(stream, Arc::clone(&state)));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
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
    for session in state.sessions.values_mut() {
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
        match &session.conn {
            Some((_, tx)) => {
                let _ = tx.send(ToConn::Deliver(copy));
            }
            None if !session.clean && copy.qos != QoS::AtMostOnce => session.queued.push_back(copy),
            None => {}
        }
    }
}

/// One client connection.
struct Conn {
    id: u64,
    client_id: String,
    state: Shared,
    wbuf: BytesMut,
    /// Messages waiting for an in-flight slot.
    waiting: VecDeque<Routed>,
    in_flight: BTreeMap<u16, (Routed, bool)>,
    last_pkid: u16,
    incoming_qos2: HashSet<u16>,
}

async fn serve(mut stream: TcpStream, state: Shared) {
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
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut conn = Conn {
        id: 0,
        client_id: connect.client_id.clone(),
        state: Arc::clone(&state),
        wbuf: BytesMut::with_capacity(64 * 1024),
        waiting: VecDeque::new(),
        in_flight: BTreeMap::new(),
        last_pkid: 0,
        incoming_qos2: HashSet::new(),
    };
    let session_present = {
        let mut st = lock(&state);
        st.next_conn += 1;
        conn.id = st.next_conn;
        if conn.client_id.is_empty() {
            conn.client_id = format!("embedded-{}", conn.id);
        }
        let old = st.sessions.remove(&conn.client_id);
        if let Some((_, old_tx)) = old.as_ref().and_then(|s| s.conn.as_ref()) {
            let _ = old_tx.send(ToConn::Close);
        }
        let (mut session, present) = match old {
            Some(s) if !connect.clean_session && !s.clean => (s, true),
            _ => (Session::default(), false),
        };
        session.clean = connect.clean_session;
        session.conn = Some((conn.id, tx));
        conn.waiting = std::mem::take(&mut session.queued);
        st.sessions.insert(conn.client_id.clone(), session);
        present
    };
    let ack = ConnAck::new(ConnectReturnCode::Success, session_present);
    if conn.put(&Packet::ConnAck(ack)).is_err() {
        return;
    }
    conn.pump();
    let (mut rd, mut wr) = stream.split();
    loop {
        if rbuf.capacity() - rbuf.len() < 8 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        let go_on = tokio::select! {
            r = wr.write_buf(&mut conn.wbuf), if !conn.wbuf.is_empty() => matches!(r, Ok(n) if n > 0),
            r = rd.read_buf(&mut rbuf) => match r {
                Ok(n) if n > 0 => conn.incoming(&mut rbuf),
                _ => false,
            },
            m = rx.recv() => match m {
                Some(ToConn::Deliver(msg)) => {
                    conn.waiting.push_back(msg);
                    conn.pump();
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

    /// Sends waiting messages while there are free in-flight slots.
    fn pump(&mut self) {
        while self.in_flight.len() < BROKER_IN_FLIGHT {
            let Some(msg) = self.waiting.pop_front() else {
                return;
            };
            let mut p = Publish::from_bytes(
                msg.topic.clone(),
                codec::to_wire(msg.qos),
                msg.payload.clone(),
            );
            p.retain = msg.retain;
            if msg.qos != QoS::AtMostOnce {
                p.pkid = self.next_pkid();
                self.in_flight.insert(p.pkid, (msg, false));
            }
            // Sizes were checked when the message came in.
            let _ = self.put(&Packet::Publish(p));
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
                if fresh {
                    let msg = Routed {
                        topic: p.topic,
                        payload: p.payload,
                        qos,
                        retain: p.retain,
                    };
                    route(&mut lock(&self.state), &msg);
                }
                match qos {
                    QoS::AtMostOnce => Ok(()),
                    QoS::AtLeastOnce => self.put(&Packet::PubAck(PubAck::new(p.pkid))),
                    QoS::ExactlyOnce => self.put(&Packet::PubRec(PubRec::new(p.pkid))),
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
                self.waiting.extend(retained);
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

    /// The connection ended: a clean session goes, a persistent one keeps what it was owed.
    fn leave(self) {
        let mut st = lock(&self.state);
        let Some(session) = st.sessions.get_mut(&self.client_id) else {
            return;
        };
        if session.conn.as_ref().is_none_or(|(id, _)| *id != self.id) {
            return; // taken over by a newer connection
        }
        if session.clean {
            st.sessions.remove(&self.client_id);
            return;
        }
        session.conn = None;
        let mut owed: VecDeque<Routed> = self.in_flight.into_values().map(|(m, _)| m).collect();
        owed.extend(
            self.waiting
                .into_iter()
                .filter(|m| m.qos != QoS::AtMostOnce),
        );
        owed.append(&mut session.queued);
        session.queued = owed;
    }
}
