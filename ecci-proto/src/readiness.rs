//! The readiness handshake between controllers and components, as a sans-IO
//! state machine.
//!
//! An ECCI app is a tree: one *global* controller, optionally *local*
//! controllers under it, and components at the leaves. Nobody may start working
//! before every container below the global controller is connected and
//! subscribed; the handshake (wire.md §4) makes sure of that:
//!
//! ```text
//!  component c1       local controller L        global controller G       platform
//!      |                    |  connect                  |  connect            |
//!      |                    |------------------------------------------------>| ready_type "controller"
//!      |<---- req_ready ----|                           |-------------------->| ready_type "controller"
//!      |----- ready ------->|  (all of L's targets)     |---- req_ready ----->| (to c2, L, …)
//!      |                    |----- ready -------------->|                     |
//!      |                    |                           | (all of G's targets answered)
//!      |                    |<---- start ---------------|-------------------->| ready_type "app"
//!      |<---- start --------| started                   | started             |
//!   started                 |                           |                     |
//! ```
//!
//! A component sends `ready` to its controller on every (re)connect until it
//! has started, and whenever its controller asks with `req_ready`. A controller
//! collects `ready` from each of its targets; a local controller then reports
//! `ready` upward and waits for `start`, the global controller starts at once.
//! `start` flows down the tree.
//!
//! [`Readiness`] does no IO and reads no clock: a driver feeds it [`Event`]s
//! (connected, a command arrived, a retry tick) and carries out the [`Action`]s
//! it returns (publish a command, report to the platform, release the
//! application). Everything is deterministic, so the whole protocol, including
//! lost, duplicated and reordered messages and restarted peers, is tested here
//! without a broker.
//!
//! Where the Python SDK falls short the machine is more robust while keeping
//! the wire: [`Event::Timeout`] re-sends whatever is still pending (Python waits
//! forever when one message is lost), and every step is idempotent, so a
//! container never starts twice however many `start`s reach it.

use std::fmt;

use crate::name::{BrokerId, ContainerName};

/// Another container taking part in the handshake: its name and the broker it
/// is connected to (where commands for it are published).
///
/// ```
/// use ecci_proto::readiness::Peer;
/// let ctrl = Peer::new("ctrl".parse()?, "cloud".parse()?);
/// assert_eq!(ctrl.name, "ctrl");
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The container's name (the sender or receiver segment of its topics).
    pub name: ContainerName,
    /// The id of the broker it is connected to.
    pub broker: BrokerId,
}

impl Peer {
    /// A peer called `name` on broker `broker`.
    pub fn new(name: ContainerName, broker: BrokerId) -> Self {
        Self { name, broker }
    }
}

/// What part a container plays in the handshake (`ECCI_APP_TYPE`).
///
/// A container without `ECCI_APP_TYPE` takes no part: it gets no [`Readiness`]
/// at all, is never waited for, and hands `ready`/`start`/`exit` commands to
/// the application like any other command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `ECCI_APP_TYPE=component`: announces itself to `controller` (the single
    /// entry of `ECCI_APP_CONTROLLER_CONTAINER`) and waits for `start`.
    Component {
        /// The controller this component reports to.
        controller: Peer,
    },
    /// `ECCI_APP_TYPE=controller`: waits for `ready` from every target (the
    /// keys of `ECCI_PUB_TARGETS`), then starts them.
    Controller {
        /// The containers this controller waits for and starts. A target listed
        /// twice (by name) is waited for once.
        targets: Vec<Peer>,
        /// This controller's own controller (`ECCI_APP_CONTROLLER_CONTAINER`):
        /// `Some` for a *local* controller, which reports `ready` upward and
        /// waits for `start`; `None` for the *global* controller, which starts
        /// the app itself.
        upstream: Option<Peer>,
    },
}

/// A readiness command: the `NAME` in contents `{'cmd': NAME}` of a `cmd`
/// envelope.
///
/// ```
/// use ecci_proto::readiness::Cmd;
/// assert_eq!(Cmd::from_wire("req_ready"), Some(Cmd::ReqReady));
/// assert_eq!(Cmd::ReqReady.as_str(), "req_ready");
/// assert_eq!(Cmd::from_wire("my_app_command"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    /// `ready`: the sender (and everything below it) is connected and waiting.
    Ready,
    /// `start`: the receiver may start working.
    Start,
    /// `exit`: the receiver is asked to exit.
    Exit,
    /// `req_ready`: the sender (a controller) asks for `ready` again.
    ReqReady,
}

impl Cmd {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Cmd::Ready => "ready",
            Cmd::Start => "start",
            Cmd::Exit => "exit",
            Cmd::ReqReady => "req_ready",
        }
    }

    /// The command called `name` on the wire, or `None` for a command the
    /// handshake does not know (an application's own command).
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "ready" => Some(Cmd::Ready),
            "start" => Some(Cmd::Start),
            "exit" => Some(Cmd::Exit),
            "req_ready" => Some(Cmd::ReqReady),
            _ => None,
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `ready_type` of a readiness report to the platform (`con_cntr_ready`).
///
/// ```
/// use ecci_proto::readiness::ReadyType;
/// assert_eq!(ReadyType::App.as_str(), "app");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyType {
    /// `"controller"`: a controller is connected and collecting `ready`s.
    Controller,
    /// `"app"`: the global controller has started the whole app.
    App,
}

impl ReadyType {
    /// The `ready_type` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyType::Controller => "controller",
            ReadyType::App => "app",
        }
    }
}

impl fmt::Display for ReadyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened, fed to [`Readiness::handle`] by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The container (re)connected and its inbound subscriptions are in place.
    Connected,
    /// A `cmd` envelope addressed to this container arrived (the receiver
    /// segment of its topic is this container's own name, not a sub object's).
    Command {
        /// The sender, parsed from the topic.
        from: &'a ContainerName,
        /// The command name, `contents['cmd']`.
        cmd: &'a str,
    },
    /// A retry tick: re-send whatever is still unanswered. How often is the
    /// driver's choice; ticks while everything is settled do nothing.
    Timeout,
}

/// What the driver must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish `{'type': 'cmd', 'contents': {'cmd': cmd}}` to `to`
    /// (topic `ECCI/{to.broker}/{app}/app/{me}/{to.name}`).
    Send {
        /// The receiver.
        to: Peer,
        /// The command.
        cmd: Cmd,
    },
    /// Publish a readiness report with this `ready_type` to `con_cntr_ready`.
    Report(ReadyType),
    /// The handshake is complete: release the application (happens at most
    /// once per [`Readiness`], and after the `start`s it sends are queued).
    Started,
    /// An `exit` arrived: tell the application (at most once).
    ExitRequested,
    /// A readiness command that does not fit this container's role or came
    /// from the wrong container: an error event for the application.
    Unexpected(UnexpectedCommand),
}

/// A readiness command the machine refused: who sent what and why.
///
/// ```
/// use ecci_proto::readiness::{Cmd, Reason, UnexpectedCommand};
/// let e = UnexpectedCommand { from: "x".parse()?, cmd: Cmd::Ready, reason: Reason::NotATarget };
/// assert_eq!(e.to_string(), r#"unexpected `ready` from "x": not one of this controller's targets"#);
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected `{cmd}` from {from:?}: {reason}")]
pub struct UnexpectedCommand {
    /// The sender.
    pub from: ContainerName,
    /// The command.
    pub cmd: Cmd,
    /// Why it does not fit.
    pub reason: Reason,
}

/// Why a readiness command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A `ready` reached a controller from a container it does not wait for.
    NotATarget,
    /// A `ready` reached a component, which waits for nobody.
    NotAController,
    /// A `start` or `req_ready` came from a container other than this
    /// container's controller.
    NotTheController,
    /// A `start` or `req_ready` reached the global controller, which has no
    /// controller of its own.
    NoController,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::NotATarget => "not one of this controller's targets",
            Reason::NotAController => "this container is a component, not a controller",
            Reason::NotTheController => "not this container's controller",
            Reason::NoController => "this is the global controller, it has no controller",
        })
    }
}

/// Where the handshake stands (see [`Readiness::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// A controller waiting for `ready` from some of its targets.
    Collecting,
    /// Waiting for `start`: a component, or a local controller whose targets
    /// have all answered.
    AwaitingStart,
    /// Started.
    Started,
}

/// The readiness handshake of one container (wire.md §4), without IO.
///
/// Feed it every [`Event`] with [`handle`](Self::handle) and carry out the
/// returned [`Action`]s in order. Every command is also handed to the
/// application by the driver; this machine only adds the handshake's effects,
/// and returns no action for commands it does not know.
///
/// Behaviour, by role:
///
/// - **component**: on [`Event::Connected`] or [`Event::Timeout`] while not
///   started, and on every `req_ready` from its controller (started or not, so
///   that a restarted controller can complete), sends `ready` to its controller.
///   `start` from its controller → [`Action::Started`], once.
/// - **controller**: on [`Event::Connected`] while not started, reports
///   [`ReadyType::Controller`] and sends `req_ready` to every target. Each
///   target's first `ready` is recorded; when all have answered, the global
///   controller sends `start` to every target, reports [`ReadyType::App`] and is
///   started, while a local controller sends `ready` upstream and, on `start`
///   from upstream, sends `start` to every target and is started. A `ready`
///   after the controller has started (a target restarted) sends `start` to
///   every target again (and, for the global controller, the app report), as
///   the Python controller does; targets that already started ignore it.
///   [`Event::Timeout`] while not started re-sends `req_ready` to the targets
///   that have not answered, or, for a local controller whose targets all
///   answered, `ready` upstream; so does `req_ready` from upstream, which a
///   started local controller answers too. A second `start` to a started local
///   controller is not forwarded: its targets are started, and any that restart
///   are started by its own `ready` handling.
/// - **both**: `exit` from any sender → [`Action::ExitRequested`], once (the
///   protocol does not say who may send it, so the sender is not checked, and it
///   is not forwarded to targets). After that the machine is done: every later
///   event yields no action, so an exiting controller starts nothing.
///
/// `ready`, `start` and `req_ready` from a container the role does not expect
/// yield [`Action::Unexpected`] and change nothing.
///
/// # Example
///
/// A global controller with one target:
///
/// ```
/// use ecci_proto::readiness::{Action, Cmd, Event, Peer, Readiness, ReadyType, Role};
///
/// let worker = Peer::new("worker".parse()?, "edge1".parse()?);
/// let mut ctrl = Readiness::new(Role::Controller { targets: vec![worker.clone()], upstream: None });
///
/// assert_eq!(
///     ctrl.handle(Event::Connected),
///     [
///         Action::Report(ReadyType::Controller),
///         Action::Send { to: worker.clone(), cmd: Cmd::ReqReady },
///     ]
/// );
/// assert_eq!(ctrl.pending().collect::<Vec<_>>(), [&worker.name]);
///
/// let actions = ctrl.handle(Event::Command { from: &worker.name, cmd: "ready" });
/// assert_eq!(
///     actions,
///     [
///         Action::Send { to: worker.clone(), cmd: Cmd::Start },
///         Action::Report(ReadyType::App),
///         Action::Started,
///     ]
/// );
/// assert!(ctrl.is_started());
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Readiness {
    role: Role,
    /// Parallel to the controller's targets: whether each has sent `ready`.
    /// Empty for a component.
    answered: Vec<bool>,
    started: bool,
    exit_requested: bool,
}

impl Readiness {
    /// The handshake of a container playing `role`, freshly (re)started.
    pub fn new(mut role: Role) -> Self {
        if let Role::Controller { targets, .. } = &mut role {
            let mut seen = std::collections::BTreeSet::new();
            targets.retain(|t| seen.insert(t.name.clone()));
        }
        let answered = match &role {
            Role::Controller { targets, .. } => vec![false; targets.len()],
            Role::Component { .. } => Vec::new(),
        };
        Self {
            role,
            answered,
            started: false,
            exit_requested: false,
        }
    }

    /// The role, with duplicate targets removed.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Whether [`Action::Started`] has been returned.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Whether [`Action::ExitRequested`] has been returned.
    pub fn exit_requested(&self) -> bool {
        self.exit_requested
    }

    /// The targets that have not sent `ready` yet, in the role's order (none
    /// for a component).
    pub fn pending(&self) -> impl Iterator<Item = &ContainerName> + '_ {
        self.targets()
            .iter()
            .zip(&self.answered)
            .filter(|(_, answered)| !**answered)
            .map(|(t, _)| &t.name)
    }

    /// Where the handshake stands.
    pub fn state(&self) -> State {
        if self.started {
            State::Started
        } else if self.all_answered() {
            // A component has no targets, so it is always here until started.
            State::AwaitingStart
        } else {
            State::Collecting
        }
    }

    /// Advances the handshake by one event and returns what the driver must
    /// do, in order.
    pub fn handle(&mut self, event: Event<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.exit_requested {
            return out;
        }
        match event {
            Event::Connected => self.on_connected(&mut out),
            Event::Timeout => self.on_timeout(&mut out),
            Event::Command { from, cmd } => match Cmd::from_wire(cmd) {
                Some(Cmd::Exit) => {
                    self.exit_requested = true;
                    out.push(Action::ExitRequested);
                }
                Some(Cmd::Ready) => self.on_ready(from, &mut out),
                Some(Cmd::Start) => self.on_start(from, &mut out),
                Some(Cmd::ReqReady) => self.on_req_ready(from, &mut out),
                None => {}
            },
        }
        out
    }

    fn targets(&self) -> &[Peer] {
        match &self.role {
            Role::Controller { targets, .. } => targets,
            Role::Component { .. } => &[],
        }
    }

    fn all_answered(&self) -> bool {
        self.answered.iter().all(|a| *a)
    }

    /// Who this container reports `ready` to and takes `start` from.
    fn upstream(&self) -> Option<&Peer> {
        match &self.role {
            Role::Component { controller } => Some(controller),
            Role::Controller { upstream, .. } => upstream.as_ref(),
        }
    }

    fn send_to_targets(&self, cmd: Cmd, out: &mut Vec<Action>) {
        out.extend(self.targets().iter().map(|t| Action::Send {
            to: t.clone(),
            cmd,
        }));
    }

    fn send_ready_upstream(&self, out: &mut Vec<Action>) {
        if let Some(up) = self.upstream() {
            out.push(Action::Send {
                to: up.clone(),
                cmd: Cmd::Ready,
            });
        }
    }

    /// The "all answered" step of a controller that has not started yet.
    fn on_all_answered(&mut self, out: &mut Vec<Action>) {
        if self.upstream().is_some() {
            self.send_ready_upstream(out);
        } else {
            self.start(out);
        }
    }

    /// Starts the targets, then the application: `Started` comes last so that
    /// a driver carrying out actions in order has queued every `start` before
    /// the application can publish anything.
    fn start(&mut self, out: &mut Vec<Action>) {
        self.send_to_targets(Cmd::Start, out);
        if matches!(self.role, Role::Controller { upstream: None, .. }) {
            out.push(Action::Report(ReadyType::App));
        }
        if !self.started {
            self.started = true;
            out.push(Action::Started);
        }
    }

    fn on_connected(&mut self, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        match &self.role {
            Role::Component { .. } => self.send_ready_upstream(out),
            Role::Controller { .. } => {
                out.push(Action::Report(ReadyType::Controller));
                // To all targets, not only the pending ones: components that
                // started before this controller (re)started must answer again.
                self.send_to_targets(Cmd::ReqReady, out);
                if self.all_answered() {
                    self.on_all_answered(out);
                }
            }
        }
    }

    fn on_timeout(&mut self, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        if self.all_answered() {
            // A component or a local controller awaiting `start`; a global
            // controller only gets here with no targets at all.
            self.on_all_answered(out);
        } else {
            out.extend(
                self.targets()
                    .iter()
                    .zip(&self.answered)
                    .filter(|(_, answered)| !**answered)
                    .map(|(t, _)| Action::Send {
                        to: t.clone(),
                        cmd: Cmd::ReqReady,
                    }),
            );
        }
    }

    fn on_ready(&mut self, from: &ContainerName, out: &mut Vec<Action>) {
        let unexpected = |reason| {
            Action::Unexpected(UnexpectedCommand {
                from: from.clone(),
                cmd: Cmd::Ready,
                reason,
            })
        };
        if let Role::Component { .. } = self.role {
            out.push(unexpected(Reason::NotAController));
            return;
        }
        let Some(i) = self.targets().iter().position(|t| t.name == *from) else {
            out.push(unexpected(Reason::NotATarget));
            return;
        };
        if self.started {
            // A target restarted: start it (and, as Python does, all others).
            self.start(out);
            return;
        }
        let Some(answered) = self.answered.get_mut(i) else {
            return;
        };
        if *answered {
            return;
        }
        *answered = true;
        if self.all_answered() {
            self.on_all_answered(out);
        }
    }

    /// Checks that `from` is this container's controller; otherwise reports it.
    fn check_upstream(&self, from: &ContainerName, cmd: Cmd, out: &mut Vec<Action>) -> bool {
        let reason = match self.upstream() {
            Some(up) if up.name == *from => return true,
            Some(_) => Reason::NotTheController,
            None => Reason::NoController,
        };
        out.push(Action::Unexpected(UnexpectedCommand {
            from: from.clone(),
            cmd,
            reason,
        }));
        false
    }

    fn on_start(&mut self, from: &ContainerName, out: &mut Vec<Action>) {
        if !self.check_upstream(from, Cmd::Start, out) || self.started {
            return;
        }
        // Even a local controller still collecting starts: its upstream only
        // sends `start` early when the app already ran (a restarted local
        // controller hears a re-broadcast), and targets that are not yet
        // listening get `start` again when their `ready` arrives.
        self.start(out);
    }

    fn on_req_ready(&mut self, from: &ContainerName, out: &mut Vec<Action>) {
        if self.check_upstream(from, Cmd::ReqReady, out) && self.all_answered() {
            self.send_ready_upstream(out);
        }
    }
}
