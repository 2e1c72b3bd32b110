//! The bounded buffer between the callers of `log` and the worker thread, and the counters.
//!
//! Callers take a `std` mutex for a push (a few nanoseconds, never across an await or IO)
//! and wake the worker only when the buffer was empty, so a burst costs one wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::time::SystemTime;

use ecci_proto::platform::Level;
use tokio::sync::Notify;

use crate::config::Overflow;

/// A record as captured on the caller's thread; the worker turns it into JSON.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) time: SystemTime,
    pub(crate) level: Level,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) kv: Vec<(String, serde_json::Value)>,
}

impl Entry {
    /// About the memory the record takes in the buffer: its text and a fixed overhead.
    pub(crate) fn weight(&self) -> usize {
        let kv: usize = self
            .kv
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        serde_json::Value::String(s) => s.len(),
                        _ => 8,
                    }
                    + 64
            })
            .sum();
        128 + self.message.len() + self.target.len() + kv
    }
}

/// What waits in the buffer: records, and flush markers that are signalled once every
/// record before them was acknowledged (or given up on).
#[derive(Debug)]
pub(crate) enum Item {
    Record(Entry),
    Flush(Flushed),
}

/// Signals a waiting flush; dropping it unsignalled tells the waiter the logger stopped.
/// Blocking waiters use a std channel (safe to wait on anywhere, with a timeout), async
/// waiters a oneshot (awaiting it leaves the runtime free to run the transport).
#[derive(Debug)]
pub(crate) enum Flushed {
    Blocking(mpsc::Sender<()>),
    Async(tokio::sync::oneshot::Sender<()>),
}

impl Flushed {
    pub(crate) fn signal(self) {
        match self {
            Flushed::Blocking(tx) => {
                let _ = tx.send(());
            }
            Flushed::Async(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Records in `items` (flush markers do not count against the capacity).
    records: usize,
    /// The records' [`Entry::weight`]s, summed.
    bytes: usize,
}

/// The counters behind [`Stats`](crate::Stats).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) logged: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Drops not yet reported to the platform.
    pub(crate) unreported: AtomicU64,
    pub(crate) acknowledged: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) reports: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn drop_records(&self, n: u64) {
        Counters::add(&self.dropped, n);
        Counters::add(&self.unreported, n);
    }
}

/// State shared by the logger, its guard and the worker.
#[derive(Debug)]
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    pub(crate) wake: Notify,
    capacity: usize,
    capacity_bytes: usize,
    overflow: Overflow,
    pub(crate) counters: Counters,
    /// Set once the worker stopped; later records are dropped at once.
    pub(crate) stopped: AtomicBool,
}

impl Shared {
    pub(crate) fn new(capacity: usize, capacity_bytes: usize, overflow: Overflow) -> Shared {
        Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            capacity: capacity.max(1),
            capacity_bytes,
            overflow,
            counters: Counters::default(),
            stopped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; if something did, the queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Buffers a record, applying the overflow policy. Never waits for anything but the
    /// buffer's mutex.
    pub(crate) fn push(&self, entry: Entry) {
        Counters::add(&self.counters.logged, 1);
        if self.stopped.load(Ordering::Relaxed) {
            self.counters.drop_records(1);
            return;
        }
        let weight = entry.weight();
        if weight > self.capacity_bytes {
            // Larger than the whole buffer: it could only ever be dropped.
            self.counters.drop_records(1);
            return;
        }
        let mut evicted = Vec::new();
        let was_empty;
        {
            let mut q = self.lock();
            while q.records >= self.capacity || q.bytes + weight > self.capacity_bytes {
                match self.overflow {
                    Overflow::DropNewest => {
                        drop(q);
                        self.counters.drop_records(1);
                        return;
                    }
                    Overflow::DropOldest => {
                        let oldest = q.items.iter().position(|i| matches!(i, Item::Record(_)));
                        let Some(Item::Record(old)) = oldest.and_then(|i| q.items.remove(i)) else {
                            break;
                        };
                        q.records -= 1;
                        q.bytes -= old.weight();
                        evicted.push(old);
                    }
                }
            }
            was_empty = q.items.is_empty();
            q.items.push_back(Item::Record(entry));
            q.records += 1;
            q.bytes += weight;
        }
        if !evicted.is_empty() {
            self.counters.drop_records(evicted.len() as u64);
        }
        // Freed outside the lock.
        drop(evicted);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Queues a flush marker; the receiver gets `()` once every record before it is settled.
    pub(crate) fn push_flush(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        self.push_marker(Flushed::Blocking(tx));
        rx
    }

    /// [`push_flush`](Shared::push_flush) for a waiter that awaits.
    pub(crate) fn push_flush_async(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.push_marker(Flushed::Async(tx));
        rx
    }

    fn push_marker(&self, flushed: Flushed) {
        let was_empty = {
            let mut q = self.lock();
            let was_empty = q.items.is_empty();
            q.items.push_back(Item::Flush(flushed));
            was_empty
        };
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// The next item for the worker.
    pub(crate) fn pop(&self) -> Option<Item> {
        let mut q = self.lock();
        let item = q.items.pop_front()?;
        if let Item::Record(entry) = &item {
            q.records -= 1;
            q.bytes -= entry.weight();
        }
        Some(item)
    }

    /// Records waiting in the buffer now.
    pub(crate) fn buffered(&self) -> usize {
        self.lock().records
    }

    /// Empties the buffer after the worker stopped; the records count as dropped.
    pub(crate) fn discard(&self) {
        let (items, records) = {
            let mut q = self.lock();
            q.bytes = 0;
            (std::mem::take(&mut q.items), std::mem::take(&mut q.records))
        };
        drop(items);
        self.counters.drop_records(records as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message: &str) -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH,
            level: Level::Info,
            target: "t".to_owned(),
            message: message.to_owned(),
            kv: Vec::new(),
        }
    }

    fn messages(shared: &Shared) -> Vec<String> {
        std::iter::from_fn(|| shared.pop())
            .map(|item| match item {
                Item::Record(e) => e.message,
                Item::Flush(_) => "<flush>".to_owned(),
            })
            .collect()
    }

    #[track_caller]
    fn check(overflow: Overflow, pushes: &[&str], expected: &[&str], dropped: u64) {
        let shared = Shared::new(2, usize::MAX, overflow);
        let mut flushes = Vec::new();
        for p in pushes {
            if *p == "<flush>" {
                flushes.push(shared.push_flush());
            } else {
                shared.push(entry(p));
            }
        }
        assert_eq!(Counters::get(&shared.counters.dropped), dropped);
        assert_eq!(Counters::get(&shared.counters.unreported), dropped);
        assert_eq!(messages(&shared), expected);
    }

    #[test]
    fn overflow_policies() {
        check(Overflow::DropOldest, &["a", "b"], &["a", "b"], 0);
        check(Overflow::DropOldest, &["a", "b", "c", "d"], &["c", "d"], 2);
        check(Overflow::DropNewest, &["a", "b", "c", "d"], &["a", "b"], 2);
        // Flush markers take no room and are never evicted.
        check(
            Overflow::DropOldest,
            &["<flush>", "a", "<flush>", "b", "c"],
            &["<flush>", "<flush>", "b", "c"],
            1,
        );
    }

    #[test]
    fn stopped_drops_at_once() {
        let shared = Shared::new(4, usize::MAX, Overflow::DropOldest);
        shared.push(entry("a"));
        shared.stopped.store(true, Ordering::Relaxed);
        shared.push(entry("b"));
        shared.discard();
        assert_eq!(Counters::get(&shared.counters.dropped), 2);
        assert_eq!(Counters::get(&shared.counters.logged), 2);
        assert_eq!(shared.buffered(), 0);
    }

    #[test]
    fn the_buffer_is_bounded_by_bytes_too() {
        let big = "x".repeat(1000);
        let weight = entry(&big).weight();
        // Room for three such records by bytes, ten by count.
        let shared = Shared::new(10, 3 * weight, Overflow::DropOldest);
        for _ in 0..5 {
            shared.push(entry(&big));
        }
        assert_eq!(shared.buffered(), 3);
        assert_eq!(Counters::get(&shared.counters.dropped), 2);
        // A record larger than the whole buffer is dropped and counted; the rest stay.
        shared.push(entry(&"y".repeat(4 * weight)));
        assert_eq!(shared.buffered(), 3);
        assert_eq!(Counters::get(&shared.counters.dropped), 3);
        // Drop-newest keeps the first ones.
        let weight = entry(&format!("0{big}")).weight();
        let shared = Shared::new(10, 3 * weight, Overflow::DropNewest);
        for i in 0..5 {
            shared.push(entry(&format!("{i}{big}")));
        }
        let kept: Vec<String> = messages(&shared)
            .iter()
            .map(|m| m[..1].to_owned())
            .collect();
        assert_eq!(kept, ["0", "1", "2"]);
        assert_eq!(shared.lock().bytes, 0);
    }
}
