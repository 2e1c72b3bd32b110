//! Sequence numbers end to end: the envelope extension a Rust sender adds beside `type`
//! and `contents`, and the receiver's sans-IO [`Tracker`] that drops duplicates and reports
//! gaps.
//!
//! The extension is one more key in the envelope dict, `'ecci_seq': (incarnation, lane,
//! seq)`, three ints: the sender process's random incarnation (new at every start), its
//! lane (0: messages in publish order, 1: urgent ones that may overtake them) and the
//! message's number on that lane towards that target, from 1. Python peers and the
//! fileManager plugin read only `type` and `contents` and ignore it; a message without it
//! (from Python, or the SDK's own handshake and file messages) is passed on as before,
//! untracked.
//!
//! A receiver keeps one stream per (topic, incarnation, lane): a number seen before is a
//! duplicate (dropped); numbers skipped by a later one are *missing*, and those still
//! missing after the grace period are reported as a [`Gap`]. A stream's first message sets
//! its start (what came before it may have reached an earlier run of the receiver),
//! except for a sender's new incarnation on a topic already known, which must start at 1.
//!
//! A stream whose sender asks for end-to-end acknowledgements (it carries [`E2e`], read
//! with [`Tracker::receive_e2e`]) is the sender's to repair: it sends again what was not
//! acknowledged, so a missing number there is not a loss yet. It becomes one when the
//! sender gives it up (its announced `base` passes it: reported at once), when the sender
//! starts again (a new incarnation on the same topic: the old run's missing numbers are
//! reported at once), or after [`E2E_GRACE`] without either (the sender vanished).
//!
//! Memory is bounded whatever peers send: at most [`MAX_STREAMS`] streams (the one heard
//! from least recently goes), each remembering its numbers as at most [`MAX_RANGES`]
//! intervals (beyond them the lowest is forgotten, and a number that old is passed on) and
//! at most [`MAX_RANGES`] missing ranges (beyond them the oldest is reported at once).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::pickle::Value;

/// The envelope key of the extension.
pub const KEY: &str = "ecci_seq";

/// Most streams a [`Tracker`] keeps.
pub const MAX_STREAMS: usize = 1024;
/// Most missing ranges a stream keeps waiting; beyond them the oldest is reported at once.
pub const MAX_RANGES: usize = 256;
/// How long a missing number of an end-to-end stream waits before it is reported although
/// its sender neither gave it up nor restarted (see the module docs).
pub const E2E_GRACE: Duration = Duration::from_secs(600);
/// Most gaps waiting to be taken by [`Tracker::expire`]; beyond them, gaps of one stream
/// are merged into one report.
pub const MAX_DUE: usize = 1024;

/// Which lane of a sender's messages to one target a number counts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Messages that leave in publish order (data and ordinary commands).
    Ordered,
    /// Urgent messages, which may overtake the ordered ones.
    Urgent,
}

impl Lane {
    fn to_wire(self) -> i64 {
        match self {
            Lane::Ordered => 0,
            Lane::Urgent => 1,
        }
    }

    fn from_wire(n: i64) -> Option<Self> {
        match n {
            0 => Some(Lane::Ordered),
            1 => Some(Lane::Urgent),
            _ => None,
        }
    }
}

/// The extension of one message.
///
/// ```
/// use ecci_proto::envelope::Envelope;
/// use ecci_proto::pickle::Value;
/// use ecci_proto::sequence::{Lane, Seq};
///
/// let seq = Seq { incarnation: 7, lane: Lane::Ordered, seq: 1 };
/// let value = seq.add_to(Envelope::data(Value::from(3)).into_value());
/// assert_eq!(Seq::read(&value), Some(seq));
/// // The envelope is unchanged for anyone reading only `type` and `contents`.
/// assert_eq!(Envelope::from_value(value).unwrap(), Envelope::data(Value::from(3)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seq {
    /// The sender process's incarnation (random, new at every start; below 2^63).
    pub incarnation: u64,
    /// The lane.
    pub lane: Lane,
    /// The number, from 1 (below 2^63).
    pub seq: u64,
}

impl Seq {
    /// `envelope` (an envelope dict) with the extension as one more key.
    pub fn add_to(self, envelope: Value) -> Value {
        let ext = Value::Tuple(vec![
            Value::Int(to_i64(self.incarnation)),
            Value::Int(self.lane.to_wire()),
            Value::Int(to_i64(self.seq)),
        ]);
        match envelope {
            Value::Dict(mut pairs) => {
                pairs.push((Value::from(KEY), ext));
                Value::Dict(pairs)
            }
            other => other,
        }
    }

    /// The extension of a decoded envelope, if it has a well-formed one.
    pub fn read(envelope: &Value) -> Option<Seq> {
        let Value::Tuple(items) = envelope.get(KEY)? else {
            return None;
        };
        let [Value::Int(inc), Value::Int(lane), Value::Int(seq)] = items.as_slice() else {
            return None;
        };
        Some(Seq {
            incarnation: u64::try_from(*inc).ok()?,
            lane: Lane::from_wire(*lane)?,
            seq: u64::try_from(*seq).ok().filter(|s| *s >= 1)?,
        })
    }
}

/// The envelope key a sender with end-to-end delivery on adds beside [`KEY`]:
/// `'ecci_e2e': (reply_broker, base)`, the broker id its acknowledgements go to and the
/// lowest number on that lane it still waits for (everything below was acknowledged).
/// It announces the capability: a receiver acknowledges only messages that carry it.
pub const E2E_KEY: &str = "ecci_e2e";

/// The envelope key of an acknowledgement: `'ecci_ack': (incarnation, lane, through)`,
/// in an envelope `{'type': 'cmd', 'contents': {'cmd': 'ecci_ack'}, 'ecci_ack': …}` sent
/// by the receiving SDK to the sender (`ECCI/{reply_broker}/{app}/app/{receiver}/{sender}`):
/// every number from the sender's `base` through `through` has arrived. Cumulative: one
/// acknowledgement stands for a whole batch.
pub const ACK_KEY: &str = "ecci_ack";

/// The command name of an acknowledgement envelope (a valid command for any reader).
pub const ACK_CMD: &str = "ecci_ack";

/// The end-to-end announcement of one message (see [`E2E_KEY`]).
///
/// ```
/// use ecci_proto::pickle::Value;
/// use ecci_proto::sequence::E2e;
/// let e = E2e { reply_broker: "b1".into(), base: 4 };
/// let v = e.add_to(Value::dict([("type", Value::from("data"))]));
/// assert_eq!(E2e::read(&v), Some(e));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E2e {
    /// The broker id acknowledgements go to (the sender's broker).
    pub reply_broker: String,
    /// The lowest number the sender still waits for on this lane.
    pub base: u64,
}

impl E2e {
    /// `envelope` with the announcement as one more key.
    pub fn add_to(&self, envelope: Value) -> Value {
        let ext = Value::Tuple(vec![
            Value::from(self.reply_broker.as_str()),
            Value::Int(to_i64(self.base)),
        ]);
        match envelope {
            Value::Dict(mut pairs) => {
                pairs.push((Value::from(E2E_KEY), ext));
                Value::Dict(pairs)
            }
            other => other,
        }
    }

    /// The announcement of a decoded envelope, if it has a well-formed one.
    pub fn read(envelope: &Value) -> Option<E2e> {
        let Value::Tuple(items) = envelope.get(E2E_KEY)? else {
            return None;
        };
        let [Value::Str(broker), Value::Int(base)] = items.as_slice() else {
            return None;
        };
        let broker: &str = broker.as_ref();
        // A broker id is one topic segment.
        if broker.is_empty() || broker.contains(['/', '+', '#', '\0']) {
            return None;
        }
        Some(E2e {
            reply_broker: broker.to_owned(),
            base: u64::try_from(*base).ok().filter(|b| *b >= 1)?,
        })
    }
}

/// An acknowledgement (see [`ACK_KEY`]).
///
/// ```
/// use ecci_proto::sequence::{Ack, Lane};
/// let ack = Ack { incarnation: 5, lane: Lane::Ordered, through: 40 };
/// assert_eq!(Ack::read(&ack.to_value()), Some(ack));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The sender's incarnation.
    pub incarnation: u64,
    /// The lane.
    pub lane: Lane,
    /// Every number from the sender's base through this one arrived.
    pub through: u64,
}

impl Ack {
    /// The acknowledgement envelope.
    pub fn to_value(&self) -> Value {
        Value::dict([
            ("type", Value::from("cmd")),
            ("contents", Value::dict([("cmd", Value::from(ACK_CMD))])),
            (
                ACK_KEY,
                Value::Tuple(vec![
                    Value::Int(to_i64(self.incarnation)),
                    Value::Int(self.lane.to_wire()),
                    Value::Int(to_i64(self.through)),
                ]),
            ),
        ])
    }

    /// The acknowledgement in a decoded envelope, if it is a well-formed one.
    pub fn read(envelope: &Value) -> Option<Ack> {
        let Value::Tuple(items) = envelope.get(ACK_KEY)? else {
            return None;
        };
        let [Value::Int(inc), Value::Int(lane), Value::Int(through)] = items.as_slice() else {
            return None;
        };
        Some(Ack {
            incarnation: u64::try_from(*inc).ok()?,
            lane: Lane::from_wire(*lane)?,
            through: u64::try_from(*through).ok()?,
        })
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Messages missing from a stream after the grace period: `first..=last` on `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The topic of the stream (sender and receiver are in it).
    pub topic: String,
    /// The sender's incarnation.
    pub incarnation: u64,
    /// The lane.
    pub lane: Lane,
    /// The first missing number.
    pub first: u64,
    /// The last missing number.
    pub last: u64,
    /// How many numbers in `first..=last` are missing: all of them, unless a flood of gaps
    /// from one peer had several merged into one report.
    pub count: u64,
}

/// What to do with a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on.
    New,
    /// Seen before: drop it.
    Duplicate,
    /// Pass it on; it had been reported missing already (it came after the grace period).
    Late,
}

#[derive(Debug)]
struct Range {
    first: u64,
    last: u64,
    deadline: Instant,
}

/// A set of numbers as at most [`MAX_RANGES`] intervals; when more would be needed, the
/// lowest interval is forgotten and numbers below `floor` count as unknown.
#[derive(Debug, Default)]
struct Intervals {
    /// Start → end (inclusive), disjoint and not adjacent.
    map: BTreeMap<u64, u64>,
    floor: u64,
}

impl Intervals {
    fn contains(&self, n: u64) -> bool {
        self.map
            .range(..=n)
            .next_back()
            .is_some_and(|(_, end)| n <= *end)
    }

    fn insert_range(&mut self, first: u64, last: u64) {
        let (mut first, mut last) = (first.max(self.floor), last);
        if first > last {
            return;
        }
        // The common case (the next number of a stream): the last interval starting at or
        // before `last + 1` starts at or before `first` and touches it, so no other
        // interval overlaps or touches: extend it in place.
        if let Some((start, end)) = self.map.range_mut(..=last.saturating_add(1)).next_back() {
            if *start <= first && end.saturating_add(1) >= first {
                *end = (*end).max(last);
                return;
            }
        }
        // Merge with every interval that overlaps or touches.
        while let Some((&s, &e)) = self.map.range(..=last.saturating_add(1)).next_back() {
            if e.saturating_add(1) < first {
                break;
            }
            self.map.remove(&s);
            first = first.min(s);
            last = last.max(e);
        }
        self.map.insert(first, last);
        while self.map.len() > MAX_RANGES {
            if let Some((_, end)) = self.map.pop_first() {
                self.floor = end + 1;
            }
        }
    }

    fn below_floor(&self, n: u64) -> bool {
        n < self.floor
    }
}

#[derive(Debug)]
struct Stream {
    highest: u64,
    /// Numbers received.
    seen: Intervals,
    /// Missing ranges, oldest deadline first.
    missing: VecDeque<Range>,
    /// Numbers reported missing, so that one arriving later is told apart.
    reported: Intervals,
    last_heard: Instant,
    /// Whether the sender repairs it (it announced end-to-end acknowledgements).
    e2e: bool,
}

/// The receiver's duplicate filter and gap detector; sans-IO: the caller passes the time.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ecci_proto::sequence::{Lane, Seq, Tracker, Verdict};
///
/// let grace = Duration::from_secs(5);
/// let mut t = Tracker::new(grace);
/// let now = Instant::now();
/// let seq = |n| Seq { incarnation: 9, lane: Lane::Ordered, seq: n };
/// assert_eq!(t.receive("a/b", seq(1), now), Verdict::New);
/// assert_eq!(t.receive("a/b", seq(1), now), Verdict::Duplicate);
/// assert_eq!(t.receive("a/b", seq(5), now), Verdict::New); // 2..=4 missing
/// assert_eq!(t.receive("a/b", seq(3), now), Verdict::New); // late, within the grace
/// assert!(t.expire(now + grace / 2).is_empty());
/// let gaps = t.expire(now + grace);
/// assert_eq!(gaps.iter().map(|g| g.count).sum::<u64>(), 2); // 2 and 4
/// ```
#[derive(Debug)]
pub struct Tracker {
    grace: Duration,
    e2e_grace: Duration,
    /// Topic → its streams by (incarnation, lane); a topic is here while it has a stream
    /// (so that a new incarnation there must start at 1). Two levels, so that a message
    /// of a known stream is looked up by its borrowed topic, allocating nothing.
    topics: HashMap<String, HashMap<(u64, Lane), Stream>>,
    /// Streams in all topics, at most [`MAX_STREAMS`].
    streams: usize,
    /// Gaps reported before their grace period because a stream had too many.
    due: VecDeque<Gap>,
}

impl Tracker {
    /// A tracker that reports what is still missing `grace` after it was noticed.
    pub fn new(grace: Duration) -> Self {
        Tracker {
            grace,
            e2e_grace: E2E_GRACE.max(grace),
            topics: HashMap::new(),
            streams: 0,
            due: VecDeque::new(),
        }
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// This tracker, waiting `grace` instead of [`E2E_GRACE`] for a missing number of an
    /// end-to-end stream whose sender neither gave it up nor restarted (never less than
    /// the plain grace).
    #[must_use]
    pub fn with_e2e_grace(mut self, grace: Duration) -> Self {
        self.e2e_grace = grace.max(self.grace);
        self
    }

    /// Takes a message with the extension `seq`, received on `topic` at `now`.
    pub fn receive(&mut self, topic: &str, seq: Seq, now: Instant) -> Verdict {
        self.take(topic, seq, None, now)
    }

    /// Takes a message with the extension `seq` whose sender repairs the stream: it
    /// announced end-to-end acknowledgements, with `base` the lowest number it still sends
    /// again. Numbers missing below `base` are reported at once (the sender gave them up), as
    /// are those of the sender's earlier incarnations on `topic`; numbers from `base` on wait
    /// for their retransmission (at most the e2e grace).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ecci_proto::sequence::{Lane, Seq, Tracker};
    ///
    /// let mut t = Tracker::new(Duration::from_secs(5));
    /// let now = Instant::now();
    /// let seq = |n| Seq { incarnation: 9, lane: Lane::Ordered, seq: n };
    /// t.receive_e2e("a/b", seq(1), 1, now);
    /// t.receive_e2e("a/b", seq(4), 2, now); // 2 and 3 missing: the sender will send them again
    /// assert!(t.expire(now + Duration::from_secs(60)).is_empty());
    /// t.receive_e2e("a/b", seq(5), 3, now); // the sender gave 2 up
    /// let gaps = t.expire(now);
    /// assert_eq!((gaps[0].first, gaps[0].last), (2, 2));
    /// ```
    pub fn receive_e2e(&mut self, topic: &str, seq: Seq, base: u64, now: Instant) -> Verdict {
        self.take(topic, seq, Some(base), now)
    }

    /// Takes a message; `base`: the sender's announced base, if it repairs the stream.
    fn take(&mut self, topic: &str, seq: Seq, base: Option<u64>, now: Instant) -> Verdict {
        let id = (seq.incarnation, seq.lane);
        let e2e = base.is_some();
        let grace = if e2e { self.e2e_grace } else { self.grace };
        if let Some(stream) = self.topics.get_mut(topic).and_then(|m| m.get_mut(&id)) {
            let verdict = stream.take(topic, id, seq.seq, e2e, grace, now, &mut self.due);
            if let Some(base) = base {
                stream.settle(topic, id, base, &mut self.due);
            }
            return verdict;
        }
        if self.streams >= MAX_STREAMS {
            self.evict();
        }
        let n = seq.seq;
        let restarted = self.topics.get(topic).is_some_and(|m| !m.is_empty());
        let mut stream = Stream {
            highest: n,
            seen: Intervals::default(),
            missing: VecDeque::new(),
            reported: Intervals::default(),
            last_heard: now,
            e2e,
        };
        stream.seen.insert_range(n, n);
        if restarted && n > 1 {
            // A new run of a sender we heard before starts at 1.
            stream.missing.push_back(Range {
                first: 1,
                last: n - 1,
                deadline: now + grace,
            });
        }
        if restarted && e2e {
            // Nobody is left to repair the earlier runs' repaired streams.
            for (k, s) in self.topics.get_mut(topic).into_iter().flatten() {
                if k.0 != id.0 && s.e2e {
                    while let Some(r) = s.missing.pop_front() {
                        let gap = report(topic, *k, s, r.first, r.last);
                        push_due(&mut self.due, gap);
                    }
                }
            }
        }
        if let Some(base) = base {
            stream.settle(topic, id, base, &mut self.due);
        }
        match self.topics.get_mut(topic) {
            Some(streams) => {
                streams.insert(id, stream);
            }
            None => {
                self.topics
                    .insert(topic.to_owned(), HashMap::from([(id, stream)]));
            }
        }
        self.streams += 1;
        Verdict::New
    }

    /// The gaps whose grace period is over at `now` (and any reported early because a
    /// stream had too many); each is reported once.
    pub fn expire(&mut self, now: Instant) -> Vec<Gap> {
        for (topic, streams) in &mut self.topics {
            for (id, stream) in streams {
                while stream.missing.front().is_some_and(|r| r.deadline <= now) {
                    let Some(r) = stream.missing.pop_front() else {
                        break;
                    };
                    let gap = report(topic, *id, stream, r.first, r.last);
                    push_due(&mut self.due, gap);
                }
            }
        }
        let mut gaps: Vec<Gap> = self.due.drain(..).collect();
        gaps.sort_by(|a, b| (&a.topic, a.first).cmp(&(&b.topic, b.first)));
        gaps
    }

    /// Whether gaps were reported early (a stream had too many missing ranges): call
    /// [`expire`](Self::expire) now.
    pub fn has_due(&self) -> bool {
        !self.due.is_empty()
    }

    /// The earliest time a grace period ends, if any range is missing; see also
    /// [`has_due`](Self::has_due).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.topics
            .values()
            .flat_map(HashMap::values)
            .filter_map(|s| s.missing.front().map(|r| r.deadline))
            .min()
    }

    /// The highest number `n` such that every number from `base` through `n` of the
    /// stream (`topic`, `incarnation`, `lane`) arrived; `base - 1` when `base` did not.
    /// What a receiver acknowledges.
    pub fn through(&self, topic: &str, incarnation: u64, lane: Lane, base: u64) -> u64 {
        let below = base.saturating_sub(1);
        let Some(stream) = self
            .topics
            .get(topic)
            .and_then(|m| m.get(&(incarnation, lane)))
        else {
            return below;
        };
        match stream.seen.map.range(..=base).next_back() {
            Some((_, end)) if *end >= base => *end,
            _ => below,
        }
    }

    /// Drops the stream heard from least recently.
    fn evict(&mut self) {
        let oldest = self
            .topics
            .iter()
            .flat_map(|(topic, m)| m.iter().map(move |(id, s)| (topic, *id, s.last_heard)))
            .min_by_key(|(_, _, heard)| *heard)
            .map(|(topic, id, _)| (topic.clone(), id));
        if let Some((topic, id)) = oldest {
            if let Some(streams) = self.topics.get_mut(&topic) {
                if streams.remove(&id).is_some() {
                    self.streams -= 1;
                }
                if streams.is_empty() {
                    self.topics.remove(&topic);
                }
            }
        }
    }

    /// Every stream, for the tests' bounds.
    #[cfg(test)]
    fn all_streams(&self) -> impl Iterator<Item = &Stream> {
        self.topics.values().flat_map(HashMap::values)
    }
}

impl Stream {
    /// Takes the number `n` of this known stream (`topic`, `id`); `e2e`: whether its
    /// sender repairs it, `grace` how long a number it skips waits.
    #[expect(
        clippy::too_many_arguments,
        reason = "the stream's key and the message's facts"
    )]
    fn take(
        &mut self,
        topic: &str,
        id: (u64, Lane),
        n: u64,
        e2e: bool,
        grace: Duration,
        now: Instant,
        due: &mut VecDeque<Gap>,
    ) -> Verdict {
        let stream = self;
        stream.last_heard = now;
        if e2e && !stream.e2e {
            // From now on the sender repairs it: what is missing waits longer.
            stream.e2e = true;
            let deadline = now + grace;
            for r in &mut stream.missing {
                r.deadline = r.deadline.max(deadline);
            }
        }
        if stream.seen.contains(n) {
            return Verdict::Duplicate;
        }
        if stream.seen.below_floor(n) {
            // Too old to know: pass it on rather than lose it.
            return Verdict::New;
        }
        stream.seen.insert_range(n, n);
        if n > stream.highest {
            if n > stream.highest + 1 {
                stream.missing.push_back(Range {
                    first: stream.highest + 1,
                    last: n - 1,
                    deadline: now + grace,
                });
            }
            stream.highest = n;
        } else if stream.reported.contains(n) {
            return Verdict::Late;
        } else if let Some(i) = stream
            .missing
            .iter()
            .position(|r| r.first <= n && n <= r.last)
        {
            let r = &mut stream.missing[i];
            if r.first == r.last {
                stream.missing.remove(i);
            } else if r.first == n {
                r.first += 1;
            } else if r.last == n {
                r.last -= 1;
            } else {
                let tail = Range {
                    first: n + 1,
                    last: r.last,
                    deadline: r.deadline,
                };
                r.last = n - 1;
                stream.missing.insert(i + 1, tail);
            }
        }
        while stream.missing.len() > MAX_RANGES {
            let Some(r) = stream.missing.pop_front() else {
                break;
            };
            let gap = report(topic, id, stream, r.first, r.last);
            push_due(due, gap);
        }
        Verdict::New
    }

    /// Reports at once what is missing below `base`: its sender gave it up.
    fn settle(&mut self, topic: &str, id: (u64, Lane), base: u64, due: &mut VecDeque<Gap>) {
        if !self.missing.iter().any(|r| r.first < base) {
            return;
        }
        let mut settled = Vec::new();
        let mut kept = VecDeque::with_capacity(self.missing.len());
        for mut r in self.missing.drain(..) {
            if r.first < base {
                let last = r.last.min(base - 1);
                settled.push((r.first, last));
                if r.last < base {
                    continue;
                }
                r.first = base;
            }
            kept.push_back(r);
        }
        self.missing = kept;
        for (first, last) in settled {
            let gap = report(topic, id, self, first, last);
            push_due(due, gap);
        }
    }
}

/// The gap `first..=last` of the stream (`topic`, `id`), remembered as reported.
fn report(topic: &str, id: (u64, Lane), stream: &mut Stream, first: u64, last: u64) -> Gap {
    stream.reported.insert_range(first, last);
    Gap {
        topic: topic.to_owned(),
        incarnation: id.0,
        lane: id.1,
        first,
        last,
        count: last - first + 1,
    }
}

/// Queues `gap` for [`Tracker::expire`]; when [`MAX_DUE`] are waiting, it is merged into
/// the last one of its stream, or else the oldest waiting one is merged into the new one's
/// count (so no lost message goes uncounted, though its stream may be misnamed).
fn push_due(due: &mut VecDeque<Gap>, mut gap: Gap) {
    if due.len() >= MAX_DUE {
        let same = |g: &Gap| {
            g.topic == gap.topic && g.incarnation == gap.incarnation && g.lane == gap.lane
        };
        if let Some(last) = due.iter_mut().rev().find(|g| same(g)) {
            last.first = last.first.min(gap.first);
            last.last = last.last.max(gap.last);
            last.count += gap.count;
            return;
        }
        if let Some(oldest) = due.pop_front() {
            gap.count += oldest.count;
        }
    }
    due.push_back(gap);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(incarnation: u64, n: u64) -> Seq {
        Seq {
            incarnation,
            lane: Lane::Ordered,
            seq: n,
        }
    }

    #[test]
    fn a_lost_range_is_reported_once_after_the_grace_and_a_late_one_is_told_apart() {
        let grace = Duration::from_secs(5);
        let mut t = Tracker::new(grace);
        let t0 = Instant::now();
        for n in 1..=10 {
            assert_eq!(t.receive("x", seq(1, n), t0), Verdict::New);
        }
        assert_eq!(t.receive("x", seq(1, 20), t0), Verdict::New);
        assert_eq!(t.next_deadline(), Some(t0 + grace));
        assert!(t.expire(t0 + grace - Duration::from_millis(1)).is_empty());
        let gaps = t.expire(t0 + grace);
        assert_eq!(
            gaps,
            vec![Gap {
                topic: "x".into(),
                incarnation: 1,
                lane: Lane::Ordered,
                first: 11,
                last: 19,
                count: 9,
            }]
        );
        assert!(t.expire(t0 + grace * 10).is_empty());
        assert_eq!(t.receive("x", seq(1, 15), t0 + grace), Verdict::Late);
        assert_eq!(t.receive("x", seq(1, 15), t0 + grace), Verdict::Duplicate);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn a_first_message_sets_the_start_but_a_new_incarnation_starts_at_one() {
        let grace = Duration::from_secs(1);
        let mut t = Tracker::new(grace);
        let t0 = Instant::now();
        assert_eq!(t.receive("x", seq(1, 500), t0), Verdict::New);
        assert!(t.expire(t0 + grace).is_empty());
        // The sender restarted and its first 3 messages are gone.
        assert_eq!(t.receive("x", seq(2, 4), t0), Verdict::New);
        let gaps = t.expire(t0 + grace);
        assert_eq!((gaps.len(), gaps[0].first, gaps[0].last), (1, 1, 3));
        // Lanes and topics are separate streams.
        let urgent = Seq {
            lane: Lane::Urgent,
            ..seq(2, 1)
        };
        assert_eq!(t.receive("x", urgent, t0), Verdict::New);
        assert_eq!(t.receive("y", seq(2, 1), t0), Verdict::New);
        assert_eq!(t.receive("y", seq(2, 1), t0), Verdict::Duplicate);
    }

    #[test]
    fn memory_stays_bounded_whatever_a_peer_sends() {
        let mut t = Tracker::new(Duration::from_secs(1));
        let t0 = Instant::now();
        // Every other number: a missing range and a seen interval per message.
        for n in 0..2_000u64 {
            t.receive("x", seq(1, 1 + 2 * n), t0);
        }
        assert!(t.has_due());
        assert_eq!(t.receive("x", seq(1, u64::MAX / 4), t0), Verdict::New);
        let s = t.all_streams().next().unwrap();
        assert!(s.seen.map.len() <= MAX_RANGES && s.missing.len() <= MAX_RANGES);
        let gaps = t.expire(t0 + Duration::from_secs(1));
        let lost: u64 = gaps.iter().map(|g| g.count).sum();
        assert_eq!(lost, 1_999 + (u64::MAX / 4 - 4_000));
        assert!(t.all_streams().all(|s| s.reported.map.len() <= MAX_RANGES));
        // A number too old to know is passed on.
        assert_eq!(t.receive("x", seq(1, 3), t0), Verdict::New);
        for i in 0..(MAX_STREAMS as u64 + 10) {
            t.receive("x", seq(10 + i, 1), t0);
        }
        assert_eq!(t.all_streams().count(), MAX_STREAMS);
        assert_eq!(t.streams, MAX_STREAMS);
    }

    #[test]
    fn intervals_merge_what_overlaps_or_touches() {
        let mut i = Intervals::default();
        let ranges = |i: &Intervals| i.map.iter().map(|(s, e)| (*s, *e)).collect::<Vec<_>>();
        for n in [5, 7, 6, 8] {
            i.insert_range(n, n);
        }
        assert_eq!(ranges(&i), [(5, 8)]);
        i.insert_range(1, 2);
        i.insert_range(12, 14);
        i.insert_range(6, 7); // inside
        assert_eq!(ranges(&i), [(1, 2), (5, 8), (12, 14)]);
        i.insert_range(3, 11); // touches all three
        assert_eq!(ranges(&i), [(1, 14)]);
        i.insert_range(20, 20);
        i.insert_range(16, 30);
        assert_eq!(ranges(&i), [(1, 14), (16, 30)]);
        assert!(i.contains(14) && !i.contains(15) && i.contains(16));
    }

    #[test]
    fn through_is_the_contiguous_run_from_the_base() {
        let mut t = Tracker::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(t.through("x", 1, Lane::Ordered, 1), 0);
        for n in [3, 4, 5, 7] {
            t.receive("x", seq(1, n), t0);
        }
        // A receiver that started late: the sender says 1 and 2 were acknowledged already.
        assert_eq!(t.through("x", 1, Lane::Ordered, 3), 5);
        assert_eq!(t.through("x", 1, Lane::Ordered, 1), 0);
        t.receive("x", seq(1, 6), t0);
        assert_eq!(t.through("x", 1, Lane::Ordered, 3), 7);
        assert_eq!(t.through("x", 1, Lane::Urgent, 3), 2);
        assert_eq!(t.through("x", 2, Lane::Ordered, 1), 0);
    }

    #[test]
    fn malformed_acks_and_announcements_are_ignored() {
        let env = |k: &str, ext: Value| Value::dict([("type", Value::from("cmd")), (k, ext)]);
        let ints = |v: &[i64]| Value::Tuple(v.iter().map(|n| Value::Int(*n)).collect());
        assert_eq!(
            Ack::read(&env(ACK_KEY, ints(&[1, 0, 0]))).map(|a| a.through),
            Some(0)
        );
        assert_eq!(Ack::read(&env(ACK_KEY, ints(&[1, 3, 0]))), None);
        assert_eq!(Ack::read(&env(ACK_KEY, ints(&[1, 0, -1]))), None);
        assert_eq!(Ack::read(&env(ACK_KEY, Value::from(1))), None);
        let ann = |b: &str, base: i64| {
            env(
                E2E_KEY,
                Value::Tuple(vec![Value::from(b), Value::Int(base)]),
            )
        };
        assert!(E2e::read(&ann("b1", 1)).is_some());
        assert_eq!(E2e::read(&ann("b1", 0)), None);
        assert_eq!(E2e::read(&ann("a/b", 1)), None);
        assert_eq!(E2e::read(&ann("", 1)), None);
        assert_eq!(E2e::read(&ann("#", 1)), None);
    }

    #[test]
    fn malformed_extensions_are_ignored() {
        let env = |ext: Value| Value::dict([("type", Value::from("data")), (KEY, ext)]);
        let ints = |v: &[i64]| Value::Tuple(v.iter().map(|n| Value::Int(*n)).collect());
        assert_eq!(Seq::read(&env(ints(&[1, 0, 1]))), Some(seq(1, 1)));
        assert_eq!(Seq::read(&env(ints(&[1, 0, 0]))), None);
        assert_eq!(Seq::read(&env(ints(&[-1, 0, 1]))), None);
        assert_eq!(Seq::read(&env(ints(&[1, 2, 1]))), None);
        assert_eq!(Seq::read(&env(ints(&[1, 0]))), None);
        assert_eq!(Seq::read(&env(Value::from("x"))), None);
        assert_eq!(Seq::read(&Value::from(1)), None);
    }

    #[test]
    fn a_repaired_stream_waits_for_its_sender_and_reports_what_it_gives_up() {
        let grace = Duration::from_secs(5);
        let mut t = Tracker::new(grace);
        let t0 = Instant::now();
        for n in 1..=3 {
            assert_eq!(t.receive_e2e("x", seq(1, n), 1, t0), Verdict::New);
        }
        // 4..=9 missing: the sender sends them again, so no report after the plain grace.
        assert_eq!(t.receive_e2e("x", seq(1, 10), 4, t0), Verdict::New);
        assert!(t.expire(t0 + grace * 4).is_empty());
        assert!(!t.has_due());
        // Two of them come back; the sender then gives up 4..=6 (base 7).
        assert_eq!(t.receive_e2e("x", seq(1, 5), 4, t0), Verdict::New);
        assert_eq!(t.receive_e2e("x", seq(1, 8), 4, t0), Verdict::New);
        assert_eq!(t.receive_e2e("x", seq(1, 11), 7, t0), Verdict::New);
        assert!(t.has_due(), "a given-up number is reported at once");
        let gaps: Vec<(u64, u64)> = t.expire(t0).iter().map(|g| (g.first, g.last)).collect();
        assert_eq!(gaps, [(4, 4), (6, 6)]);
        // 7 and 9 still wait; 7 arrives, 9 waits for the e2e grace.
        assert_eq!(t.receive_e2e("x", seq(1, 7), 7, t0), Verdict::New);
        assert!(t.expire(t0 + E2E_GRACE - Duration::from_secs(1)).is_empty());
        let gaps: Vec<(u64, u64)> = t
            .expire(t0 + E2E_GRACE)
            .iter()
            .map(|g| (g.first, g.last))
            .collect();
        assert_eq!(gaps, [(9, 9)]);
        // A given-up number arriving after all is late, not a duplicate.
        assert_eq!(t.receive_e2e("x", seq(1, 4), 12, t0), Verdict::Late);
        assert_eq!(t.receive_e2e("x", seq(1, 4), 12, t0), Verdict::Duplicate);
    }

    #[test]
    fn a_restarted_repairing_sender_settles_its_earlier_run_at_once() {
        let mut t = Tracker::new(Duration::from_secs(5)).with_e2e_grace(Duration::from_secs(3600));
        let t0 = Instant::now();
        t.receive_e2e("x", seq(1, 1), 1, t0);
        t.receive_e2e("x", seq(1, 4), 1, t0); // 2..=3 missing, waiting for the sender
        t.receive_e2e("y", seq(5, 1), 1, t0);
        t.receive_e2e("y", seq(5, 3), 1, t0); // another topic: not settled by x's restart
        assert!(t.expire(t0 + Duration::from_secs(60)).is_empty());
        // The sender of x starts again (its new run's base is 1).
        assert_eq!(t.receive_e2e("x", seq(2, 1), 1, t0), Verdict::New);
        let gaps: Vec<(u64, u64, u64)> = t
            .expire(t0)
            .iter()
            .map(|g| (g.incarnation, g.first, g.last))
            .collect();
        assert_eq!(gaps, [(1, 2, 3)]);
        // A new run first heard at 5 with base 3: 1..=2 were given up, 3..=4 still come.
        let mut t = Tracker::new(Duration::from_secs(5));
        t.receive_e2e("z", seq(1, 1), 1, t0);
        t.receive_e2e("z", seq(2, 5), 3, t0);
        let gaps: Vec<(u64, u64, u64)> = t
            .expire(t0 + Duration::from_secs(60))
            .iter()
            .map(|g| (g.incarnation, g.first, g.last))
            .collect();
        assert_eq!(gaps, [(2, 1, 2)]);
    }

    #[test]
    fn a_plain_stream_that_turns_repaired_waits_longer() {
        let grace = Duration::from_secs(5);
        let mut t = Tracker::new(grace);
        let t0 = Instant::now();
        t.receive("x", seq(1, 1), t0);
        t.receive("x", seq(1, 3), t0); // 2 missing, plain grace
        t.receive_e2e("x", seq(1, 4), 2, t0);
        assert!(t.expire(t0 + grace).is_empty());
        assert_eq!(t.expire(t0 + E2E_GRACE).len(), 1);
    }
}
