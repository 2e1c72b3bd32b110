//! Addressing a publish (wire.md §5), the receipt of a publish to several targets, and
//! the sequence numbers of the envelope extension ([`ecci_proto::sequence`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::collections::HashMap;
use std::sync::Mutex;

use ecci_proto::sequence::{Lane, Seq};
use ecci_transport::Receipt;
use tokio::sync::oneshot;

use crate::e2e::{Confirmation, Settled};

use crate::Error;

/// Which pub targets a publish goes to (wire.md §5), said at the call site.
///
/// - [`Targets::prefix`]`("worker")`: every pub target whose name **starts with** it
///   (`worker1`, `worker2`, …), as Python selects. A bare name (`"worker"`, `["a", "b"]`, a
///   `Vec`) means the same: it is Python's rule, and the common case.
/// - [`Targets::exact`]`(name)`: the pub target with exactly that name, so that a reply to
///   `worker1` never reaches `worker10`. Answer a message with
///   `Targets::exact(msg.sender())`.
/// - [`Targets::All`]: every key of `ECCI_PUB_TARGETS` (also `None::<&str>`).
///
/// A [`ContainerName`](ecci_proto::ContainerName) does not convert by itself: it used to
/// mean "exactly", while the same name as a `&str` meant "prefix", so
/// `publish(x, msg.sender())` and `publish(x, msg.sender().as_str())` reached different
/// containers. Now the first does not compile, and the call says which it means.
///
/// ```
/// use ecci_client::Targets;
/// use ecci_proto::ContainerName;
/// assert_eq!(Targets::prefix("worker"), Targets::Prefixes(vec!["worker".into()]));
/// assert_eq!(Targets::from("worker"), Targets::prefix("worker"));
/// let sender: ContainerName = "worker1".parse().unwrap();
/// assert_eq!(Targets::exact(&sender), Targets::Exact(vec!["worker1".into()]));
/// assert_eq!(Targets::exact(&sender), Targets::exact("worker1"));
/// assert_eq!(Targets::prefixes(["a", "b"]), Targets::Prefixes(vec!["a".into(), "b".into()]));
/// assert_eq!(Targets::from(["a", "b"]), Targets::prefixes(["a", "b"]));
/// assert_eq!(Targets::from(None::<&str>), Targets::All);
/// assert_eq!(Targets::default(), Targets::All);
/// ```
///
/// Answering a message:
///
/// ```no_run
/// # use ecci_client::Targets;
/// # async fn demo(client: ecci_client::Client, msg: ecci_client::Received) -> Result<(), ecci_client::Error> {
/// client.publish(&1, Targets::exact(msg.sender())).await?.await?;
/// # Ok(()) }
/// ```
///
/// ```compile_fail
/// # async fn demo(client: ecci_client::Client, msg: ecci_client::Received) {
/// // A ContainerName says neither prefix nor exact: use Targets::exact(msg.sender()).
/// client.publish(&1, msg.sender()).await;
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Targets {
    /// Every pub target.
    #[default]
    All,
    /// Every pub target whose name starts with one of these.
    Prefixes(Vec<String>),
    /// The pub targets with exactly these names; each must be one.
    Exact(Vec<String>),
}

impl Targets {
    /// Every pub target whose name starts with `prefix` (`"worker"` reaches `worker1` and
    /// `worker2`), as Python selects.
    pub fn prefix(prefix: impl AsRef<str>) -> Self {
        Targets::Prefixes(vec![prefix.as_ref().to_owned()])
    }

    /// Every pub target whose name starts with one of `prefixes`.
    pub fn prefixes<S: AsRef<str>>(prefixes: impl IntoIterator<Item = S>) -> Self {
        Targets::Prefixes(
            prefixes
                .into_iter()
                .map(|p| p.as_ref().to_owned())
                .collect(),
        )
    }

    /// The pub target named exactly `name` (a `&str`, a `String` or a
    /// [`&ContainerName`](ecci_proto::ContainerName), such as the sender of a message being
    /// answered).
    pub fn exact(name: impl AsRef<str>) -> Self {
        Targets::Exact(vec![name.as_ref().to_owned()])
    }

    /// The pub targets named exactly `names`; each must be one.
    pub fn exact_all<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        Targets::Exact(names.into_iter().map(|n| n.as_ref().to_owned()).collect())
    }
}

/// A bare name is a prefix ([`Targets::prefix`]), as in Python.
impl From<&str> for Targets {
    fn from(name: &str) -> Self {
        Targets::prefix(name)
    }
}

/// A bare name is a prefix ([`Targets::prefix`]), as in Python.
impl From<String> for Targets {
    fn from(name: String) -> Self {
        Targets::Prefixes(vec![name])
    }
}

/// A bare name is a prefix ([`Targets::prefix`]), as in Python.
impl From<&String> for Targets {
    fn from(name: &String) -> Self {
        Targets::prefix(name)
    }
}

/// Bare names are prefixes ([`Targets::prefixes`]), as in Python.
impl From<Vec<String>> for Targets {
    fn from(names: Vec<String>) -> Self {
        Targets::Prefixes(names)
    }
}

/// Bare names are prefixes ([`Targets::prefixes`]), as in Python.
impl From<Vec<&str>> for Targets {
    fn from(names: Vec<&str>) -> Self {
        Targets::prefixes(names)
    }
}

/// Bare names are prefixes ([`Targets::prefixes`]), as in Python.
impl From<&[&str]> for Targets {
    fn from(names: &[&str]) -> Self {
        Targets::prefixes(names)
    }
}

/// Bare names are prefixes ([`Targets::prefixes`]), as in Python.
impl<const N: usize> From<[&str; N]> for Targets {
    fn from(names: [&str; N]) -> Self {
        Targets::prefixes(names)
    }
}

/// `None` is every pub target.
impl<T: Into<Targets>> From<Option<T>> for Targets {
    fn from(names: Option<T>) -> Self {
        names.map_or(Targets::All, Into::into)
    }
}

/// The receipt of one publish: resolves when the broker acknowledged the message for every
/// target it went to (QoS 2: PUBCOMP), or with the first failure.
///
/// Dropping it does not cancel anything: the messages are queued already.
///
/// ```no_run
/// # async fn demo(client: ecci_client::Client) -> Result<(), ecci_client::Error> {
/// let delivery = client.publish(&"hello", "worker").await?;
/// println!("sent to {:?}", delivery.targets());
/// delivery.await?; // every worker's broker has it
/// # Ok(()) }
/// ```
///
/// With end-to-end delivery on ([`E2eOptions::enabled`](crate::E2eOptions::enabled)),
/// [`delivered`](Self::delivered) waits for the receiving containers themselves.
#[derive(Debug)]
pub struct Delivery {
    targets: Vec<String>,
    /// Per target, what is still to wait for.
    waits: Vec<Wait>,
}

/// What a [`Delivery`] still waits for from one target.
#[derive(Debug)]
struct Wait {
    receipt: Option<Receipt>,
    confirmation: Option<oneshot::Receiver<Settled>>,
}

impl Delivery {
    pub(crate) fn new(parts: Vec<(String, Receipt)>) -> Self {
        let mut delivery = Self::with_capacity(parts.len());
        for (target, receipt) in parts {
            delivery.push(target, receipt, None);
        }
        delivery
    }

    /// A delivery to no target yet, with room for `targets`.
    pub(crate) fn with_capacity(targets: usize) -> Self {
        Self {
            targets: Vec::with_capacity(targets),
            waits: Vec::with_capacity(targets),
        }
    }

    /// Adds a target: its broker's receipt and, if it acknowledges, its confirmation.
    pub(crate) fn push(
        &mut self,
        target: String,
        receipt: Receipt,
        confirmation: Option<oneshot::Receiver<Settled>>,
    ) {
        self.targets.push(target);
        self.waits.push(Wait {
            receipt: Some(receipt),
            confirmation,
        });
    }

    /// Waits until every receiving container has the message:
    /// [`Confirmation::Received`] when all targets acknowledged it end to end (lost
    /// copies are sent again meanwhile), [`Confirmation::Unconfirmed`] when some target
    /// does not acknowledge (a Python peer, end-to-end delivery off): then it waits for
    /// that target's broker, as awaiting the `Delivery` does.
    ///
    /// ```no_run
    /// # async fn demo(client: ecci_client::Client) -> Result<(), ecci_client::Error> {
    /// use ecci_client::Confirmation;
    /// let delivery = client.publish(&"hello", "worker").await?;
    /// if delivery.delivered().await? == Confirmation::Received {
    ///     // every worker container has it
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NotDelivered`] when a target that acknowledges did not acknowledge it
    /// within [`E2eOptions::give_up`](crate::E2eOptions::give_up) (it is no longer sent
    /// again); [`Error::Publish`] when a target that does not acknowledge was not reached;
    /// [`Error::Closed`] when the client closed first.
    pub async fn delivered(mut self) -> Result<Confirmation, Error> {
        let mut all = Confirmation::Received;
        for i in 0..self.targets.len() {
            let confirmed = match self.waits[i].confirmation.take() {
                Some(rx) => match rx.await.map_err(|_| Error::Closed)? {
                    Settled::Confirmed(c) => c,
                    Settled::GaveUp { after, attempts } => {
                        return Err(Error::NotDelivered {
                            target: self.targets[i].clone(),
                            after,
                            attempts,
                        });
                    }
                },
                None => Confirmation::Unconfirmed,
            };
            if confirmed == Confirmation::Unconfirmed {
                all = Confirmation::Unconfirmed;
                if let Some(receipt) = self.waits[i].receipt.take() {
                    receipt.await.map_err(|source| Error::Publish {
                        target: self.targets[i].clone(),
                        source,
                    })?;
                }
            }
        }
        Ok(all)
    }

    /// Where the message went: container names, or the platform topic for a report.
    pub fn targets(&self) -> &[String] {
        &self.targets
    }
}

impl Future for Delivery {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut done = true;
        for (target, wait) in this.targets.iter().zip(this.waits.iter_mut()) {
            let slot = &mut wait.receipt;
            let Some(receipt) = slot else { continue };
            match Pin::new(receipt).poll(cx) {
                Poll::Ready(Ok(())) => *slot = None,
                Poll::Ready(Err(source)) => {
                    *slot = None;
                    return Poll::Ready(Err(Error::Publish {
                        target: target.clone(),
                        source,
                    }));
                }
                Poll::Pending => done = false,
            }
        }
        if done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

/// The sender's side of the sequence extension: this process's incarnation and the next
/// number per target and lane.
#[derive(Debug)]
pub(crate) struct Sequencer {
    incarnation: u64,
    /// The last number per pub target, per lane (ordered, urgent): bounded by the
    /// configuration.
    next: Mutex<HashMap<String, [u64; 2]>>,
}

impl Sequencer {
    /// This process's incarnation.
    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub(crate) fn new() -> Self {
        let mut bytes = [0u8; 8];
        // Without an OS random source, the clock still tells restarts apart.
        let incarnation = match getrandom::getrandom(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        };
        Sequencer {
            // Below 2^63: a Python int that fits an i64 on every decoder.
            incarnation: incarnation >> 1,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// The extension of the next message to `target` on `lane`.
    pub(crate) fn next(&self, target: &str, lane: Lane) -> Seq {
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let i = match lane {
            Lane::Ordered => 0,
            Lane::Urgent => 1,
        };
        // Looked up before inserting: no key to allocate per message.
        let n = match next.get_mut(target) {
            Some(numbers) => &mut numbers[i],
            None => &mut next.entry(target.to_owned()).or_insert([0; 2])[i],
        };
        *n += 1;
        Seq {
            incarnation: self.incarnation,
            lane,
            seq: *n,
        }
    }
}
