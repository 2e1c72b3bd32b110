//! Addressing a publish (wire.md §5) and the receipt of a publish to several targets.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ecci_transport::Receipt;

use crate::Error;

/// Which pub targets a publish goes to (wire.md §5).
///
/// [`Targets::All`] is every key of `ECCI_PUB_TARGETS`; a name selects every target whose
/// name **starts with** it (`"worker"` reaches `worker1` and `worker2`), as in Python.
/// [`Targets::Exact`] (and a [`ContainerName`](ecci_proto::ContainerName), such as the
/// sender of a message being answered) selects by whole name, so that a reply to
/// `worker1` never reaches `worker10`.
///
/// ```
/// use ecci_client::Targets;
/// use ecci_proto::ContainerName;
/// assert_eq!(Targets::from("worker"), Targets::Prefixes(vec!["worker".into()]));
/// let sender: ContainerName = "worker1".parse().unwrap();
/// assert_eq!(Targets::from(&sender), Targets::Exact(vec!["worker1".into()]));
/// assert_eq!(Targets::from(["a", "b"]), Targets::Prefixes(vec!["a".into(), "b".into()]));
/// assert_eq!(Targets::from(None::<&str>), Targets::All);
/// assert_eq!(Targets::default(), Targets::All);
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
    /// The pub target named exactly `name`.
    pub fn exact(name: impl Into<String>) -> Self {
        Targets::Exact(vec![name.into()])
    }
}

impl From<&str> for Targets {
    fn from(name: &str) -> Self {
        Targets::Prefixes(vec![name.to_owned()])
    }
}

impl From<String> for Targets {
    fn from(name: String) -> Self {
        Targets::Prefixes(vec![name])
    }
}

impl From<&String> for Targets {
    fn from(name: &String) -> Self {
        Targets::Prefixes(vec![name.clone()])
    }
}

impl From<&ecci_proto::ContainerName> for Targets {
    fn from(name: &ecci_proto::ContainerName) -> Self {
        Targets::Exact(vec![name.as_str().to_owned()])
    }
}

impl From<Vec<String>> for Targets {
    fn from(names: Vec<String>) -> Self {
        Targets::Prefixes(names)
    }
}

impl From<Vec<&str>> for Targets {
    fn from(names: Vec<&str>) -> Self {
        Targets::Prefixes(names.into_iter().map(str::to_owned).collect())
    }
}

impl From<&[&str]> for Targets {
    fn from(names: &[&str]) -> Self {
        Targets::Prefixes(names.iter().map(|n| (*n).to_owned()).collect())
    }
}

impl<const N: usize> From<[&str; N]> for Targets {
    fn from(names: [&str; N]) -> Self {
        Targets::Prefixes(names.iter().map(|n| (*n).to_owned()).collect())
    }
}

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
#[derive(Debug)]
pub struct Delivery {
    targets: Vec<String>,
    receipts: Vec<Option<Receipt>>,
}

impl Delivery {
    pub(crate) fn new(parts: Vec<(String, Receipt)>) -> Self {
        let (targets, receipts) = parts.into_iter().map(|(t, r)| (t, Some(r))).unzip();
        Self { targets, receipts }
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
        for (target, slot) in this.targets.iter().zip(this.receipts.iter_mut()) {
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
