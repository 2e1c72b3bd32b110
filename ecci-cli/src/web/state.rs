//! What the page shows, built from the messages `ecci dev` sees: a pure model with fixed
//! bounds (ring buffers per edge and per list, a cap on containers, edges and transfers),
//! so a chatty app or a hostile peer cannot make it grow, and a JSON snapshot of it.
//!
//! Everything shown went through the same safe path as the terminal view: envelopes through
//! the data-only pickle decoder (presigned URL signatures redacted), text cleaned and cut.
//!
//! Gaps and duplicates: the messages a Rust container publishes carry `'ecci_seq'`
//! ([`Seq`]); the model runs one [`Tracker`] over every stream it sees (sender → receiver,
//! per incarnation and lane) and shows what is still missing after the grace period, and
//! each duplicate it saw, as error events. At most [`Limits::streams`] streams are tracked
//! at once: one more starts a fresh tracker (itself an error event), so memory stays bounded.
//! URLs a container refuses never reach the broker, so the page cannot show them; a
//! `resPutURL` or `resTransfer` whose URL points elsewhere than the local object store is
//! shown as a warning, as the container will likely refuse it.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ecci_proto::MessageType;
use ecci_proto::pickle::Value;
use ecci_proto::platform::{LogRecord, ReadyReport, ReadyType};
use ecci_proto::sequence::{Gap, Lane, Seq, Tracker, Verdict};
use ecci_proto::topic::{AppTopic, Topic, TopicKind};
use serde_json::{Value as Json, json};

use crate::repr::repr;
use crate::show::{clean, decode_with_seq};

/// The bounds of the model.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Containers shown; later ones are counted as an error, once.
    pub(crate) containers: usize,
    /// Edges (sender → receiver pairs) kept.
    pub(crate) edges: usize,
    /// Latest messages kept per edge.
    pub(crate) per_edge: usize,
    /// Log records, platform records and errors kept (each list).
    pub(crate) records: usize,
    /// File transfers kept.
    pub(crate) files: usize,
    /// Characters of a shown value.
    pub(crate) max_len: usize,
    /// An edge's latest messages are sampled: at most one per this many milliseconds.
    pub(crate) sample_ms: u64,
    /// Sequence streams (topic, sender incarnation, lane) tracked at once.
    pub(crate) streams: usize,
    /// How long a missing message may still arrive before it counts as lost (the
    /// containers' default `gap_grace`).
    pub(crate) gap_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            containers: 200,
            edges: 1000,
            per_edge: 5,
            records: 300,
            files: 100,
            max_len: 300,
            sample_ms: 100,
            streams: 256,
            gap_grace_ms: 5000,
        }
    }
}

/// Gap and duplicate detection over the streams the view sees.
#[derive(Debug)]
struct Sequences {
    tracker: Tracker,
    /// The streams fed to `tracker` since it was made.
    streams: HashSet<(String, u64, Lane)>,
    /// The time `ms` counts from, for the tracker's `Instant`s.
    epoch: Instant,
}

impl Sequences {
    fn new(grace_ms: u64) -> Sequences {
        Sequences {
            tracker: Tracker::new(Duration::from_millis(grace_ms)),
            streams: HashSet::new(),
            epoch: Instant::now(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

impl Default for Sequences {
    fn default() -> Sequences {
        Sequences::new(Limits::default().gap_grace_ms)
    }
}

/// One container of the graph.
#[derive(Debug, Default)]
struct Container {
    /// `controller`, `component`, `plugin`, or `""` while unknown.
    role: &'static str,
    /// `connected`, `ready`, `started` or `exited`.
    state: &'static str,
    /// Whether it reached `started` (it may have exited since).
    started: bool,
    last_ms: u64,
}

#[derive(Debug)]
struct Sample {
    ms: u64,
    kind: &'static str,
    repr: String,
}

#[derive(Debug, Default)]
struct Edge {
    plugin: bool,
    count: u64,
    /// Messages seen twice (by their sequence number).
    duplicates: u64,
    /// When a duplicate was last shown as an error event (at most one a second per edge).
    last_duplicate_ms: Option<u64>,
    /// Messages lost (sequence numbers missing after the grace period).
    lost: u64,
    /// End-to-end acknowledgements the receiver sent back (counted here, on the edge they
    /// acknowledge, rather than drawn as traffic the other way).
    acks: u64,
    /// Count and time at the start of the current rate window.
    base: (u64, u64),
    rate: f64,
    last_sample_ms: Option<u64>,
    latest: VecDeque<Sample>,
}

/// One transfer through the fileManager, correlated by file name as the plugin does.
#[derive(Debug, Default)]
pub(crate) struct Transfer {
    pub(crate) name: String,
    pub(crate) sender: String,
    pub(crate) receivers: Vec<String>,
    pub(crate) size: Option<u64>,
    pub(crate) uploaded: bool,
    pub(crate) downloads: usize,
    /// `None` while under way; the outcome once known.
    pub(crate) failed: Option<String>,
    pub(crate) last_ms: u64,
}

impl Transfer {
    /// Steps done over steps: the upload and one download per receiver.
    pub(crate) fn percent(&self) -> u32 {
        let total = 1 + self.receivers.len().max(1);
        let done = usize::from(self.uploaded) + self.downloads.min(self.receivers.len());
        u32::try_from(done * 100 / total).unwrap_or(100)
    }
}

/// The model.
#[derive(Debug, Default)]
pub(crate) struct State {
    limits: Limits,
    containers: BTreeMap<String, Container>,
    edges: BTreeMap<(String, String), Edge>,
    logs: VecDeque<Json>,
    records: VecDeque<Json>,
    errors: VecDeque<Json>,
    transfers: VecDeque<Transfer>,
    /// Messages seen in all.
    total: u64,
    /// Changes since start: the page is sent a snapshot when this moved.
    pub(crate) version: u64,
    dropped_containers: u64,
    dropped_edges: u64,
    pre_topic: String,
    sequences: Sequences,
    /// The local object store's origin (`http://127.0.0.1:PORT`), when `ecci dev` runs one.
    store_origin: Option<String>,
}

/// The origin of `url` as `scheme://authority`, lowercased: everything before the first
/// `/`, `?` or `#` after `://` (the whole of `url` when it has no `://`). Good enough to
/// tell the local store's `http://127.0.0.1:PORT` from anything else; never contains the
/// query, where a signature would be.
fn origin_of(url: &str) -> String {
    let end = url.find("://").map_or(url.len(), |i| {
        let rest = &url[i + 3..];
        i + 3 + rest.find(['/', '?', '#']).unwrap_or(rest.len())
    });
    url[..end].to_ascii_lowercase()
}

/// How a gap or duplicate names the urgent lane (the ordered one goes unsaid).
fn lane_note(lane: Lane) -> &'static str {
    match lane {
        Lane::Ordered => "",
        Lane::Urgent => " on the urgent lane",
    }
}

fn push_bounded<T>(list: &mut VecDeque<T>, item: T, max: usize) {
    if list.len() >= max {
        list.pop_front();
    }
    list.push_back(item);
}

impl State {
    pub(crate) fn new(limits: Limits, pre_topic: &str) -> State {
        State {
            sequences: Sequences::new(limits.gap_grace_ms),
            limits,
            pre_topic: pre_topic.to_owned(),
            ..State::default()
        }
    }

    /// Takes in one message received at `ms` (milliseconds since the view started).
    pub(crate) fn message(&mut self, topic: &str, payload: &[u8], ms: u64) {
        self.total += 1;
        self.version += 1;
        match Topic::parse_with_log_pre_topic(topic, &self.pre_topic) {
            Ok(Topic::App(t)) => {
                let (from, to) = (t.sender.as_str(), t.receiver.as_str());
                let plugin = t.kind == TopicKind::Plugin;
                // One stream per sender and receiver, whichever mountpoint it came
                // through, as the receiver counts it.
                let stream = AppTopic {
                    mountpoint: None,
                    ..t.clone()
                }
                .to_string();
                self.app_message(&stream, from, to, plugin, payload, ms);
            }
            Ok(Topic::Log(_)) => self.log(topic, payload, ms),
            Ok(Topic::Platform(_)) => self.platform(topic, payload, ms),
            Err(e) => self.error(ms, topic, &format!("not an ECCI topic: {e}")),
        }
    }

    /// Sets the local object store's origin, `http://HOST:PORT`: fileManager answers with
    /// URLs elsewhere are shown as warnings.
    pub(crate) fn set_store_origin(&mut self, origin: &str) {
        self.store_origin = Some(origin.to_ascii_lowercase());
    }

    /// An error event (a bad payload, a refused request, a lost connection).
    pub(crate) fn error(&mut self, ms: u64, topic: &str, what: &str) {
        self.version += 1;
        let max = self.limits.max_len;
        let e = json!({ "ms": ms, "topic": clean(topic, max), "error": clean(what, max) });
        push_bounded(&mut self.errors, e, self.limits.records);
    }

    fn container(&mut self, name: &str, ms: u64) -> Option<&mut Container> {
        if !self.containers.contains_key(name) {
            if self.containers.len() >= self.limits.containers {
                self.dropped_containers += 1;
                return None;
            }
            let c = Container {
                state: "connected",
                ..Container::default()
            };
            self.containers.insert(name.to_owned(), c);
        }
        let c = self.containers.get_mut(name)?;
        c.last_ms = ms;
        Some(c)
    }

    fn set_role(&mut self, name: &str, role: &'static str, ms: u64) {
        if let Some(c) = self.container(name, ms) {
            if c.role.is_empty() || role == "controller" {
                c.role = role;
            }
        }
    }

    fn set_state(&mut self, name: &str, state: &'static str, ms: u64) {
        if let Some(c) = self.container(name, ms) {
            let rank = |s: &str| match s {
                "connected" => 0,
                "ready" => 1,
                "started" => 2,
                _ => 3,
            };
            // `ready` again after `started` is a restarted component: it starts again.
            if rank(state) > rank(c.state) || state == "ready" && c.state != "exited" {
                c.state = state;
            }
            c.started |= state == "started";
        }
    }

    /// A message on the app topic `stream` (without its mountpoint).
    fn app_message(
        &mut self,
        stream: &str,
        from: &str,
        to: &str,
        plugin: bool,
        payload: &[u8],
        ms: u64,
    ) {
        let (decoded, ext) = decode_with_seq(payload);
        if ext.ack && decoded.is_ok() {
            // `from` acknowledges what `to` sent it.
            if let Some(edge) = self.edges.get_mut(&(to.to_owned(), from.to_owned())) {
                edge.acks = edge.acks.saturating_add(1);
            }
            return;
        }
        self.container(from, ms);
        self.container(to, ms);
        if plugin {
            let side = if from == "fileManager" { from } else { to };
            self.set_role(side, "plugin", ms);
        }
        let seq = ext.seq;
        let verdict = seq.map(|s| self.sequence(stream, s.seq, s.base, ms));
        let kind = match &decoded {
            Ok(e) => e.kind.as_str(),
            Err(_) => "undecodable",
        };
        let key = (from.to_owned(), to.to_owned());
        let known = self.edges.contains_key(&key);
        let mut duplicate = None;
        if !known && self.edges.len() >= self.limits.edges {
            self.dropped_edges += 1;
        } else {
            let (per_edge, sample_ms, max) = (
                self.limits.per_edge,
                self.limits.sample_ms,
                self.limits.max_len,
            );
            let edge = self.edges.entry(key).or_default();
            edge.plugin = plugin;
            edge.count += 1;
            if let Some((Verdict::Duplicate, seq)) = verdict.zip(seq) {
                edge.duplicates += 1;
                let shown = edge
                    .last_duplicate_ms
                    .is_none_or(|last| ms.saturating_sub(last) >= 1000);
                if shown {
                    edge.last_duplicate_ms = Some(ms);
                    let what = format!(
                        "duplicate from {from} to {to} (seq {}{}; {} duplicates on this edge so far)",
                        seq.seq.seq,
                        lane_note(seq.seq.lane),
                        edge.duplicates,
                    );
                    duplicate = Some(what);
                }
            }
            // Errors are always kept; other messages are sampled.
            let due = edge
                .last_sample_ms
                .is_none_or(|last| ms.saturating_sub(last) >= sample_ms);
            if due || decoded.is_err() {
                edge.last_sample_ms = Some(ms);
                let shown = match &decoded {
                    Ok(e) => repr(&e.contents, max),
                    Err(reason) => format!("undecodable: {}", clean(reason, max)),
                };
                push_bounded(
                    &mut edge.latest,
                    Sample {
                        ms,
                        kind,
                        repr: shown,
                    },
                    per_edge,
                );
            }
        }
        if let Some(what) = duplicate {
            self.error(ms, stream, &what);
        }
        match decoded {
            Ok(e) if e.kind == MessageType::Cmd => {
                let cmd = e.contents.get("cmd").and_then(Value::as_str).unwrap_or("");
                match cmd {
                    "ready" => {
                        self.set_role(from, "component", ms);
                        self.set_role(to, "controller", ms);
                        self.set_state(from, "ready", ms);
                    }
                    "start" => {
                        self.set_role(from, "controller", ms);
                        self.set_state(to, "started", ms);
                    }
                    "req_ready" => self.set_role(from, "controller", ms),
                    "exit" => self.set_state(to, "exited", ms),
                    _ => {}
                }
            }
            Ok(e) if e.kind == MessageType::File => self.file(from, to, &e.contents, ms),
            Ok(_) => {}
            Err(reason) => self.error(
                ms,
                &format!("ECCI/…/{from}/{to}"),
                &format!("undecodable payload from {from} to {to}: {reason}"),
            ),
        }
    }

    /// Runs the tracker over a message with the extension `seq`, received on `topic`.
    /// `base`: the sender repairs the stream (see [`Tracker::receive_e2e`]).
    fn sequence(&mut self, topic: &str, seq: Seq, base: Option<u64>, ms: u64) -> Verdict {
        let key = (topic.to_owned(), seq.incarnation, seq.lane);
        if !self.sequences.streams.contains(&key)
            && self.sequences.streams.len() >= self.limits.streams
        {
            // A fresh tracker rather than an unbounded one: report what is already due,
            // and say that gaps across this point are not seen.
            self.expire_gaps(ms);
            let pending = self.sequences.tracker.next_deadline().is_some();
            self.sequences = Sequences {
                epoch: self.sequences.epoch,
                ..Sequences::new(self.limits.gap_grace_ms)
            };
            let what = format!(
                "more than {} sequence streams (restarted senders or a flood): gap tracking starts afresh{}",
                self.limits.streams,
                if pending {
                    ", messages still missing within their grace period are not reported"
                } else {
                    ""
                }
            );
            self.error(ms, "sequence numbers", &what);
        }
        let now = self.sequences.at(ms);
        let verdict = match base {
            Some(base) => self.sequences.tracker.receive_e2e(topic, seq, base, now),
            None => self.sequences.tracker.receive(topic, seq, now),
        };
        self.sequences.streams.insert(key);
        verdict
    }

    /// Shows the gaps whose grace period is over at `ms` as error events.
    fn expire_gaps(&mut self, ms: u64) {
        let now = self.sequences.at(ms);
        let gaps = self.sequences.tracker.expire(now);
        for gap in gaps {
            self.gap(&gap, ms);
        }
    }

    fn gap(&mut self, gap: &Gap, ms: u64) {
        let (from, to) = match Topic::parse_with_log_pre_topic(&gap.topic, &self.pre_topic) {
            Ok(Topic::App(t)) => (t.sender.as_str().to_owned(), t.receiver.as_str().to_owned()),
            _ => ("?".to_owned(), "?".to_owned()),
        };
        if let Some(edge) = self.edges.get_mut(&(from.clone(), to.clone())) {
            edge.lost = edge.lost.saturating_add(gap.count);
        }
        let plural = if gap.count == 1 { "" } else { "s" };
        let what = format!(
            "lost {} message{plural} from {from} to {to} (seq {}..{}{}, sender incarnation {:x})",
            gap.count,
            gap.first,
            gap.last,
            lane_note(gap.lane),
            gap.incarnation,
        );
        self.error(ms, &gap.topic, &what);
    }

    fn transfer(&mut self, name: &str) -> Option<&mut Transfer> {
        self.transfers.iter_mut().rev().find(|t| t.name == name)
    }

    fn file(&mut self, from: &str, to: &str, contents: &Value, ms: u64) {
        let cmd = contents.get("cmd").and_then(Value::as_str).unwrap_or("");
        let Some(name) = contents.get("file_name").and_then(Value::as_str) else {
            return;
        };
        let max = self.limits.max_len;
        let name = clean(name, max);
        let url_key = match cmd {
            "resPutURL" => "putURL",
            "resTransfer" => "getURL",
            _ => "",
        };
        let url = contents.get(url_key).and_then(Value::as_str);
        if let (Some(url), Some(store), "fileManager") = (url, &self.store_origin, from) {
            let origin = origin_of(url);
            if origin != *store {
                let what = format!(
                    "warning: the {cmd} for {name} to {to} points at {}, not the local store {store}: the container refuses it unless its ECCI_FILE_ORIGINS lists that origin",
                    clean(&origin, max)
                );
                self.error(ms, &format!("ECCI/…/{from}/{to}"), &what);
            }
        }
        match cmd {
            "reqPutURL" => {
                let t = Transfer {
                    name,
                    sender: from.to_owned(),
                    last_ms: ms,
                    ..Transfer::default()
                };
                push_bounded(&mut self.transfers, t, self.limits.files);
            }
            "reqTransfer" => {
                let mut receivers = Vec::new();
                if let Some(Value::Dict(targets)) = contents.get("target") {
                    for (_, names) in targets {
                        if let Value::List(names) = names {
                            receivers.extend(
                                names
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .take(100)
                                    .map(|n| clean(n, max)),
                            );
                        }
                    }
                }
                if let Some(t) = self.transfer(&name) {
                    t.receivers = receivers;
                    t.last_ms = ms;
                }
            }
            "resTransfer" if from == "fileManager" => {
                if let Some(t) = self.transfer(&name) {
                    if !t.receivers.iter().any(|r| r == to) && to != "fileManager" {
                        t.receivers.push(to.to_owned());
                    }
                }
            }
            _ => {}
        }
    }

    /// What the object store answered: `method` on `object` with `status` (0: dropped).
    pub(crate) fn store_request(&mut self, method: &str, object: &str, status: u16, ms: u64) {
        let ok = (200..300).contains(&status);
        let Some(t) = self.transfer(object) else {
            return;
        };
        t.last_ms = ms;
        match (method, ok) {
            ("PUT", true) => t.uploaded = true,
            ("GET", true) => t.downloads += 1,
            (m @ ("PUT" | "GET"), false) => {
                t.failed = Some(format!("{m} answered {status}"));
            }
            _ => return,
        }
        self.version += 1;
        if !ok {
            let what = format!("the object store answered {method} {object}: {status}");
            self.error(ms, "fileManager store", &what);
        }
    }

    /// Sets the size of the transfer of `name`, once the object is stored.
    pub(crate) fn set_size(&mut self, name: &str, size: u64) {
        if let Some(t) = self.transfer(name) {
            if t.size != Some(size) {
                t.size = Some(size);
                self.version += 1;
            }
        }
    }

    /// Transfers uploaded whose size is not known yet.
    pub(crate) fn sizes_wanted(&self) -> Vec<String> {
        self.transfers
            .iter()
            .filter(|t| t.uploaded && t.size.is_none())
            .map(|t| t.name.clone())
            .collect()
    }

    fn log(&mut self, topic: &str, payload: &[u8], ms: u64) {
        let max = self.limits.max_len;
        match serde_json::from_slice::<LogRecord>(payload) {
            Ok(r) => {
                let name = r.container_name.as_str().to_owned();
                self.container(&name, ms);
                let info = &r.log_info;
                let row = json!({
                    "ms": ms,
                    "time": clean(&info.time.to_string(), 40),
                    "level": info.level.to_string(),
                    "container": clean(&name, max),
                    "logger": clean(&info.name, max),
                    "message": clean(&info.message, max),
                });
                push_bounded(&mut self.logs, row, self.limits.records);
            }
            Err(e) => self.error(ms, topic, &format!("not a log record: {e}")),
        }
    }

    fn platform(&mut self, topic: &str, payload: &[u8], ms: u64) {
        let max = self.limits.max_len;
        let what = topic.rsplit('/').next().unwrap_or("");
        let text = match std::str::from_utf8(payload) {
            Ok(t) if serde_json::from_slice::<Json>(payload).is_ok() => t,
            _ => return self.error(ms, topic, "not JSON"),
        };
        if what == "con_cntr_ready" {
            match serde_json::from_slice::<ReadyReport>(payload) {
                Ok(r) => {
                    let name = r.container_name.as_str().to_owned();
                    match r.ready_type {
                        ReadyType::Controller => self.set_role(&name, "controller", ms),
                        ReadyType::App => {
                            self.set_role(&name, "controller", ms);
                            self.set_state(&name, "started", ms);
                        }
                        ReadyType::Period(_) => {
                            self.container(&name, ms);
                        }
                    }
                }
                Err(e) => return self.error(ms, topic, &format!("not a readiness report: {e}")),
            }
        }
        let row =
            json!({ "ms": ms, "topic": clean(topic, max), "kind": what, "json": clean(text, max) });
        push_bounded(&mut self.records, row, self.limits.records);
    }

    /// Updates the rates (messages per second over windows of at least a second) and shows
    /// the gaps whose grace period is over.
    pub(crate) fn tick(&mut self, ms: u64) {
        self.expire_gaps(ms);
        for e in self.edges.values_mut() {
            let (count, at) = e.base;
            let dt = ms.saturating_sub(at);
            if dt >= 1000 {
                let rate = (e.count - count) as f64 * 1000.0 / dt as f64;
                if (rate - e.rate).abs() > f64::EPSILON {
                    e.rate = rate;
                    self.version += 1;
                }
                e.base = (e.count, ms);
            }
        }
    }

    /// The page's view of the model at `ms`.
    pub(crate) fn snapshot(&self, ms: u64) -> Json {
        let max = self.limits.max_len;
        let containers: Vec<Json> = self
            .containers
            .iter()
            .map(|(name, c)| {
                json!({
                    "name": clean(name, max),
                    "role": if c.role.is_empty() { "unknown" } else { c.role },
                    "state": c.state,
                    "started": c.started,
                    "idle_ms": ms.saturating_sub(c.last_ms),
                })
            })
            .collect();
        let edges: Vec<Json> = self
            .edges
            .iter()
            .map(|((from, to), e)| {
                json!({
                    "from": clean(from, max),
                    "to": clean(to, max),
                    "plugin": e.plugin,
                    "count": e.count,
                    "duplicates": e.duplicates,
                    "lost": e.lost,
                    "acks": e.acks,
                    "rate": (e.rate * 10.0).round() / 10.0,
                    "latest": e.latest.iter().rev().map(|s| json!({
                        "ms": s.ms, "type": s.kind, "repr": s.repr,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let files: Vec<Json> = self
            .transfers
            .iter()
            .rev()
            .map(|t| {
                let result = match (&t.failed, t.percent()) {
                    (Some(why), _) => format!("failed: {why}"),
                    (None, 100) => "delivered".to_owned(),
                    (None, _) if t.uploaded => "uploaded".to_owned(),
                    (None, _) => "requested".to_owned(),
                };
                json!({
                    "name": t.name,
                    "sender": clean(&t.sender, max),
                    "receivers": t.receivers,
                    "size": t.size,
                    "percent": t.percent(),
                    "result": result,
                })
            })
            .collect();
        json!({
            "ms": ms,
            "total": self.total,
            "containers": containers,
            "edges": edges,
            "logs": self.logs,
            "records": self.records,
            "files": files,
            "errors": self.errors,
            "dropped": { "containers": self.dropped_containers, "edges": self.dropped_edges },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecci_proto::envelope::Envelope;
    use ecci_proto::pickle::Protocol;

    fn cmd(name: &str) -> Vec<u8> {
        Envelope::cmd(name).to_pickle(Protocol::default())
    }

    fn file(pairs: Vec<(&str, Value)>) -> Vec<u8> {
        Envelope::new(MessageType::File, Value::dict(pairs)).to_pickle(Protocol::default())
    }

    /// A data message carrying the sequence-number extension.
    fn numbered(incarnation: u64, lane: Lane, seq: u64) -> Vec<u8> {
        let seq = Seq {
            incarnation,
            lane,
            seq,
        };
        let value = seq.add_to(Envelope::data(Value::from(seq.seq as i64)).into_value());
        ecci_proto::pickle::encode(&value, Protocol::default())
    }

    fn errors(snap: &Json) -> Vec<String> {
        snap["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["error"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn node<'a>(snap: &'a Json, name: &str) -> &'a Json {
        snap["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no {name} in {snap}"))
    }

    #[test]
    fn the_handshake_and_a_transfer() {
        let mut s = State::new(Limits::default(), "toEdgeAI");
        s.message(
            "toEdgeAI/local/con_cntr_ready",
            br#"{"app_id": "a", "container_name": "ctrl", "agent_id": null, "ready_type": "controller"}"#,
            1,
        );
        s.message("ECCI/local/a/app/ctrl/w1", &cmd("req_ready"), 2);
        s.message("ECCI/local/a/app/w1/ctrl", &cmd("ready"), 3);
        let snap = s.snapshot(3);
        assert_eq!(node(&snap, "w1")["state"], "ready");
        assert_eq!(node(&snap, "w1")["role"], "component");
        assert_eq!(node(&snap, "ctrl")["role"], "controller");
        s.message("ECCI/local/a/app/ctrl/w1", &cmd("start"), 4);
        s.message(
            "toEdgeAI/local/con_cntr_ready",
            br#"{"app_id": "a", "container_name": "ctrl", "agent_id": null, "ready_type": "app"}"#,
            5,
        );
        s.message("ECCI/local/a/app/ctrl/w1", &cmd("exit"), 6);
        let snap = s.snapshot(6);
        assert_eq!(node(&snap, "ctrl")["state"], "started");
        assert_eq!(node(&snap, "w1")["state"], "exited");
        assert_eq!(node(&snap, "w1")["started"], true);

        let put = file(vec![
            ("cmd", Value::from("reqPutURL")),
            ("file_name", Value::from("f.bin")),
        ]);
        s.message("ECCI/local/a/plugin/ctrl/fileManager", &put, 7);
        let url = "http://127.0.0.1:9/a/f.bin?X-Amz-Signature=s3cr3t";
        let res = file(vec![
            ("cmd", Value::from("resPutURL")),
            ("file_name", Value::from("f.bin")),
            ("putURL", Value::from(url)),
        ]);
        s.message("ECCI/local/a/plugin/fileManager/ctrl", &res, 8);
        s.store_request("PUT", "f.bin", 200, 9);
        s.set_size("f.bin", 1234);
        let targets = Value::dict([("local", Value::List(vec![Value::from("w1")]))]);
        let transfer = file(vec![
            ("cmd", Value::from("reqTransfer")),
            ("file_name", Value::from("f.bin")),
            ("target", targets),
        ]);
        s.message("ECCI/local/a/plugin/ctrl/fileManager", &transfer, 10);
        assert_eq!(s.snapshot(10)["files"][0]["percent"], 50);
        s.store_request("GET", "f.bin", 200, 11);
        let snap = s.snapshot(11);
        let f = &snap["files"][0];
        assert_eq!(
            (&f["percent"], &f["result"], &f["size"], &f["receivers"]),
            (
                &json!(100),
                &json!("delivered"),
                &json!(1234),
                &json!(["w1"])
            )
        );
        assert_eq!(node(&snap, "fileManager")["role"], "plugin");
        let text = snap.to_string();
        assert!(text.contains("?<redacted>"), "{text}");
        assert!(
            !text.contains("s3cr3t"),
            "a signature reached the page: {text}"
        );
        assert!(
            snap["errors"].as_array().is_some_and(Vec::is_empty),
            "{snap}"
        );
    }

    #[test]
    fn frames_show_as_type_and_shape_and_edges_sample() {
        use ecci_proto::pickle::{ByteOrder, DType, NdArray, Order, Scalar};
        let frame = NdArray::new(
            DType::new(Scalar::U8, ByteOrder::Little),
            vec![480, 640, 3],
            Order::C,
            vec![0u8; 480 * 640 * 3],
        )
        .expect("a frame");
        let contents = Value::dict([("frame", Value::NdArray(Box::new(frame)))]);
        let payload = Envelope::data(contents).to_pickle(Protocol::default());
        let mut s = State::new(Limits::default(), "toEdgeAI");
        // 30 frames in 300 ms: one sample per 100 ms is kept.
        for ms in 0..30 {
            s.message("ECCI/b/a/app/cam/det", &payload, ms * 10);
        }
        s.tick(1000);
        let snap = s.snapshot(1000);
        let edge = &snap["edges"][0];
        assert_eq!((&edge["count"], &edge["rate"]), (&json!(30), &json!(30.0)));
        let latest = edge["latest"].as_array().expect("latest");
        assert_eq!(latest.len(), 3, "{latest:?}");
        assert_eq!(latest[0]["type"], "data");
        assert_eq!(latest[0]["repr"], "{'frame': ndarray(uint8, 480×640×3)}");
        assert_eq!(latest[0]["ms"], 200);
    }

    #[test]
    fn errors_are_shown() {
        let mut s = State::new(Limits::default(), "toEdgeAI");
        s.message("ECCI/local/a/app/x/y", b"not a pickle", 1);
        s.message("toEdgeAI/local/log", b"{}", 2);
        s.message("toEdgeAI/local/send_data", b"\xff", 3);
        s.store_request("PUT", "nothing", 403, 4);
        let snap = s.snapshot(4);
        let errors: Vec<&str> = snap["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["error"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("undecodable payload from x to y: "));
        assert!(errors[1].starts_with("not a log record: missing field"));
        assert_eq!(errors[2], "not JSON");
        assert_eq!(snap["edges"][0]["latest"][0]["type"], "undecodable");
    }

    /// A hole in a stream is an error event once its grace period is over, not before, and
    /// once; a duplicate is one at once; a message that fills a hole in time is none.
    #[test]
    fn gaps_and_duplicates_are_error_events() {
        let limits = Limits::default();
        let grace = limits.gap_grace_ms;
        let mut s = State::new(limits, "toEdgeAI");
        let topic = "ECCI/local/a/app/cam/det";
        for (n, ms) in [(1, 0), (2, 10), (5, 20), (8, 30)] {
            s.message(topic, &numbered(0xab, Lane::Ordered, n), ms);
        }
        s.message(topic, &numbered(0xab, Lane::Ordered, 2), 40);
        // 6 comes in time, through a bridge (the same stream); 3, 4 and 7 do not.
        let bridged = format!("bridge/edge1/{topic}");
        s.message(&bridged, &numbered(0xab, Lane::Ordered, 6), 50);
        // An urgent lane of its own: 1 then 3.
        s.message(topic, &numbered(0xab, Lane::Urgent, 1), 60);
        s.message(topic, &numbered(0xab, Lane::Urgent, 3), 70);
        s.tick(20 + grace - 1);
        let snap = s.snapshot(20 + grace - 1);
        assert_eq!(
            errors(&snap),
            ["duplicate from cam to det (seq 2; 1 duplicates on this edge so far)"],
            "{snap}"
        );
        assert_eq!(snap["errors"][0]["topic"], topic);
        s.tick(70 + grace);
        // Reported once, however often the ticker runs; a late message adds nothing.
        s.tick(80 + grace);
        s.message(topic, &numbered(0xab, Lane::Ordered, 3), 90 + grace);
        s.tick(100 + 2 * grace);
        let snap = s.snapshot(100 + 2 * grace);
        assert_eq!(
            errors(&snap)[1..],
            [
                "lost 1 message from cam to det (seq 2..2 on the urgent lane, sender incarnation ab)",
                "lost 2 messages from cam to det (seq 3..4, sender incarnation ab)",
                "lost 1 message from cam to det (seq 7..7, sender incarnation ab)",
            ],
            "{snap}"
        );
        let edge = &snap["edges"][0];
        assert_eq!(
            (&edge["count"], &edge["duplicates"], &edge["lost"]),
            (&json!(9), &json!(1), &json!(4))
        );
    }

    /// A fileManager answer whose URL is not the local store's is a warning; the local
    /// store's is none.
    #[test]
    fn urls_elsewhere_than_the_local_store_are_warnings() {
        let mut s = State::new(Limits::default(), "toEdgeAI");
        s.set_store_origin("http://127.0.0.1:9000");
        let answer = |cmd: &str, key: &str, url: &str| {
            file(vec![
                ("cmd", Value::from(cmd)),
                ("file_name", Value::from("f.bin")),
                (key, Value::from(url)),
            ])
        };
        let topic = "ECCI/local/a/plugin/fileManager/w1";
        let ours = "HTTP://127.0.0.1:9000/a/f.bin?X-Amz-Signature=s3cr3t";
        s.message(topic, &answer("resPutURL", "putURL", ours), 1);
        s.message(topic, &answer("resTransfer", "getURL", ours), 2);
        let elsewhere = "http://10.0.0.7:9000/a/f.bin?X-Amz-Signature=s3cr3t";
        s.message(topic, &answer("resTransfer", "getURL", elsewhere), 3);
        s.message(
            topic,
            &answer("resPutURL", "putURL", "file:///etc/passwd"),
            4,
        );
        let snap = s.snapshot(4);
        assert_eq!(
            errors(&snap),
            [
                "warning: the resTransfer for f.bin to w1 points at http://10.0.0.7:9000, not the local store http://127.0.0.1:9000: the container refuses it unless its ECCI_FILE_ORIGINS lists that origin",
                "warning: the resPutURL for f.bin to w1 points at file://, not the local store http://127.0.0.1:9000: the container refuses it unless its ECCI_FILE_ORIGINS lists that origin",
            ]
        );
        assert!(!snap.to_string().contains("s3cr3t"), "{snap}");
    }

    /// A flood of duplicates is one error event a second per edge, each with the count.
    #[test]
    fn duplicates_are_rate_limited() {
        let mut s = State::new(Limits::default(), "toEdgeAI");
        let one = numbered(1, Lane::Ordered, 1);
        for ms in 0..2000 {
            s.message("ECCI/b/a/app/x/y", &one, ms);
        }
        let snap = s.snapshot(2000);
        assert_eq!(
            errors(&snap),
            [
                "duplicate from x to y (seq 1; 1 duplicates on this edge so far)",
                "duplicate from x to y (seq 1; 1001 duplicates on this edge so far)",
            ]
        );
        assert_eq!(snap["edges"][0]["duplicates"], 1999);
    }

    /// A stream whose sender repairs it (end-to-end delivery): a gap is not shown after the
    /// plain grace (the sender sends it again), but at once when the sender gives it up.
    #[test]
    fn a_repaired_stream_shows_a_gap_only_when_its_sender_gives_it_up() {
        let limits = Limits::default();
        let grace = limits.gap_grace_ms;
        let mut s = State::new(limits, "toEdgeAI");
        let repaired = |seq: u64, base: u64| {
            let value = Seq {
                incarnation: 7,
                lane: Lane::Ordered,
                seq,
            }
            .add_to(Envelope::data(Value::from(seq as i64)).into_value());
            let value = ecci_proto::sequence::E2e {
                reply_broker: "b".into(),
                base,
            }
            .add_to(value);
            ecci_proto::pickle::encode(&value, Protocol::default())
        };
        s.message("ECCI/b/a/app/x/y", &repaired(1, 1), 0);
        s.message("ECCI/b/a/app/x/y", &repaired(3, 2), 1);
        s.tick(10 * grace);
        let lost = |s: &mut State, ms| {
            errors(&s.snapshot(ms))
                .iter()
                .filter(|e| e.starts_with("lost"))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(lost(&mut s, 10 * grace).is_empty());
        s.message("ECCI/b/a/app/x/y", &repaired(4, 3), 10 * grace + 1);
        s.tick(10 * grace + 2);
        assert_eq!(
            lost(&mut s, 10 * grace + 2),
            ["lost 1 message from x to y (seq 2..2, sender incarnation 7)"]
        );
    }

    /// An end-to-end acknowledgement is counted on the edge it acknowledges, not drawn as
    /// an edge (or a container) of its own.
    #[test]
    fn acknowledgements_count_on_the_edge_they_acknowledge() {
        let mut s = State::new(Limits::default(), "toEdgeAI");
        s.message("ECCI/b/a/app/x/y", &numbered(1, Lane::Ordered, 1), 1);
        let ack = ecci_proto::sequence::Ack {
            incarnation: 1,
            lane: Lane::Ordered,
            through: 1,
        };
        let ack = ecci_proto::pickle::encode(&ack.to_value(), Protocol::default());
        s.message("ECCI/b/a/app/y/x", &ack, 2);
        s.message("ECCI/b/a/app/q/z", &ack, 3); // for no edge seen: ignored
        let snap = s.snapshot(3);
        let edges = snap["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 1, "{edges:?}");
        assert_eq!(
            (&edges[0]["from"], &edges[0]["to"], &edges[0]["acks"]),
            (&json!("x"), &json!("y"), &json!(1))
        );
        assert_eq!(snap["containers"].as_array().unwrap().len(), 2);
    }

    /// Streams beyond the cap start a fresh tracker (said once as an error event): the
    /// number tracked never passes the cap, and gaps are still found afterwards.
    #[test]
    fn sequence_streams_are_capped() {
        let limits = Limits {
            streams: 8,
            ..Limits::default()
        };
        let grace = limits.gap_grace_ms;
        let mut s = State::new(limits, "toEdgeAI");
        for inc in 0..20u64 {
            s.message("ECCI/b/a/app/x/y", &numbered(inc, Lane::Ordered, 1), inc);
            assert!(s.sequences.streams.len() <= 8);
        }
        let afresh = errors(&s.snapshot(20))
            .iter()
            .filter(|e| e.contains("gap tracking starts afresh"))
            .count();
        assert_eq!(afresh, 2);
        s.message("ECCI/b/a/app/x/y", &numbered(19, Lane::Ordered, 3), 30);
        s.tick(30 + grace);
        let errors = errors(&s.snapshot(30 + grace));
        assert_eq!(
            errors.last().map(String::as_str),
            Some("lost 1 message from x to y (seq 2..2, sender incarnation 13)")
        );
    }

    /// However many containers, edges, messages and records arrive, the model and its
    /// snapshot stay within the limits.
    #[test]
    fn bounded() {
        let limits = Limits::default();
        let mut s = State::new(limits.clone(), "toEdgeAI");
        let big = Envelope::data(Value::from("x".repeat(20_000))).to_pickle(Protocol::default());
        for i in 0..5_000u64 {
            let topic = format!("ECCI/b/a/app/c{}/c{}", i % 400, (i * 7) % 1_500);
            s.message(&topic, &big, i * 10);
            let log = format!(
                r#"{{"app_id": "a", "container_name": "c1", "agent_id": null, "log_info": {{"time": "2026-11-24 02:26:10,087", "name": "n", "level": "INFO", "message": "{}"}}}}"#,
                "m".repeat(10_000)
            );
            s.message("toEdgeAI/b/log", log.as_bytes(), i * 10);
            s.message("toEdgeAI/b/send_data", br#"{"type": "data"}"#, i * 10);
            s.message("ECCI/b/a/app/x", b"", i * 10);
            let put = file(vec![
                ("cmd", Value::from("reqPutURL")),
                ("file_name", Value::from(format!("f{i}"))),
            ]);
            s.message("ECCI/b/a/plugin/c1/fileManager", &put, i * 10);
            // A new sender incarnation each time, with a hole.
            let topic = format!("ECCI/b/a/app/c{}/c0", i % 50);
            s.message(&topic, &numbered(i, Lane::Ordered, 1), i * 10);
            s.message(&topic, &numbered(i, Lane::Ordered, 3), i * 10);
            s.tick(i * 10);
            assert!(s.sequences.streams.len() <= limits.streams);
        }
        let snap = s.snapshot(50_000);
        let len = |k: &str| snap[k].as_array().map_or(0, Vec::len);
        assert_eq!(len("containers"), limits.containers);
        assert!(len("edges") <= limits.edges, "{}", len("edges"));
        assert_eq!(len("logs"), limits.records);
        assert_eq!(len("records"), limits.records);
        assert_eq!(len("errors"), limits.records);
        assert_eq!(len("files"), limits.files);
        assert!(snap["dropped"]["containers"].as_u64() > Some(0));
        let per_edge = snap["edges"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| e["latest"].as_array().map_or(0, Vec::len))
                    .max()
            })
            .unwrap_or_default();
        assert!(per_edge <= Some(limits.per_edge));
        // The snapshot the page gets stays small: about 1 KiB per edge at most.
        let bytes = snap.to_string().len();
        assert!(bytes < 2 << 20, "snapshot of {bytes} bytes");
    }
}
