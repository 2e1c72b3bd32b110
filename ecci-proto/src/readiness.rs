//! The readiness handshake between controllers and components, as a sans-IO
//! state machine.
//!
//! An ECCI app is a tree: one *global* controller, optionally *local*
//! controllers under it, and components at the leaves. Nobody may start working
//! before every container below the global controller is connected and
//! subscribed; the handshake (wire.md §4) makes sure of that:
//!
//! ```text
//!  c1 (component)     l (local controller)     g (global controller)      platform
//!    |                     |-- report "controller" ----------------------------->|
//!    |<---- req_ready -----|                        |-- report "controller" ---->|
//!    |----- ready -------->|                        |-- req_ready to l, c2, …
//!    |                     | (all of l's targets)   |
//!    |                     |------ ready ---------->|
//!    |                     |                        | (all of g's targets)
//!    |                     |<----- start -----------|-- report "app" ----------->|
//!    |<---- start ---------| started                | started
//!  started
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

use crate::name::ContainerName;

/// Another container taking part in the handshake: its name and the broker it
/// is connected to (where commands for it are published). The same type as a
/// configured [`Target`](crate::config::Target), so a [`Config`](crate::Config)'s
/// targets and controller are peers as they are.
///
/// ```
/// use ecci_proto::readiness::Peer;
/// let ctrl = Peer::new("ctrl".parse()?, "cloud".parse()?);
/// assert_eq!(ctrl.name, "ctrl");
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
pub type Peer = crate::config::Target;

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

    /// The `'cmd'` envelope carrying this command: `{'cmd': NAME}`.
    ///
    /// ```
    /// use ecci_proto::readiness::Cmd;
    /// assert_eq!(Cmd::Start.to_envelope().cmd_name(), Some("start"));
    /// ```
    pub fn to_envelope(self) -> crate::envelope::Envelope {
        crate::envelope::Envelope::cmd(self.as_str())
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
///   after the controller has started sends `start` to every target again
///   (and, for the global controller, the app report), as the Python
///   controller does; targets that already started ignore it. Such a `ready`
///   comes from a restarted target, but also, in an ordinary start, from a
///   component whose `ready` on connect (or on a retry) and its answer to
///   `req_ready` straddle the moment all answered: a component's command
///   queue may then hold more than one `start`, and the platform may get more
///   than one `app` report.
///   [`Event::Timeout`] while not started re-sends `req_ready` to the targets
///   that have not answered, or, for a local controller whose targets all
///   answered, `ready` upstream; so does `req_ready` from upstream, which a
///   started local controller answers too. A local controller ignores `start`
///   until all its targets answered (a restarted one hears the upstream's
///   re-broadcasts early), so being started implies that every target answered.
///   A second `start` to a started local controller is not forwarded: its
///   targets are started, and any that restart are started by its own `ready`
///   handling.
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
    #[must_use = "the actions are the whole effect of the event"]
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
        out.extend(
            self.targets()
                .iter()
                .map(|t| Action::Send { to: t.clone(), cmd }),
        );
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
        // A local controller still collecting ignores `start` (its upstream
        // re-broadcasts `start` when another target restarts): started must
        // imply that all targets answered, or a restarted upstream's
        // `req_ready` could never be answered, and the upstream sends `start`
        // again once this controller's `ready` reaches it.
        if self.check_upstream(from, Cmd::Start, out) && !self.started && self.all_answered() {
            self.start(out);
        }
    }

    fn on_req_ready(&mut self, from: &ContainerName, out: &mut Vec<Action>) {
        if self.check_upstream(from, Cmd::ReqReady, out) && self.all_answered() {
            self.send_ready_upstream(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;
    use crate::name::BrokerId;

    fn name(s: &str) -> ContainerName {
        ContainerName::new(s).unwrap()
    }

    /// Every test peer lives on a broker named after it, so a wrong broker in a
    /// `Send` shows up as a mismatch.
    fn peer(s: &str) -> Peer {
        Peer::new(name(s), BrokerId::new(format!("b_{s}")).unwrap())
    }

    fn component(ctrl: &str) -> Role {
        Role::Component {
            controller: peer(ctrl),
        }
    }

    fn controller(targets: &[&str], upstream: Option<&str>) -> Role {
        Role::Controller {
            targets: targets.iter().map(|t| peer(t)).collect(),
            upstream: upstream.map(peer),
        }
    }

    fn send(to: &str, cmd: Cmd) -> Action {
        Action::Send { to: peer(to), cmd }
    }

    fn unexpected(from: &str, cmd: Cmd, reason: Reason) -> Action {
        Action::Unexpected(UnexpectedCommand {
            from: name(from),
            cmd,
            reason,
        })
    }

    /// One test input: `Cmd(from, cmd)` is a command from `from`.
    #[derive(Debug, Clone, Copy)]
    enum In {
        Conn,
        Tick,
        Cmd(&'static str, &'static str),
    }
    use In::{Conn, Tick};

    fn cmd(from: &'static str, cmd: &'static str) -> In {
        In::Cmd(from, cmd)
    }

    fn feed(r: &mut Readiness, input: In) -> Vec<Action> {
        match input {
            Conn => r.handle(Event::Connected),
            Tick => r.handle(Event::Timeout),
            In::Cmd(from, cmd) => r.handle(Event::Command {
                from: &name(from),
                cmd,
            }),
        }
    }

    /// Feeds `steps` to a fresh machine for `role`, checking each step's
    /// actions, and returns the machine for further checks.
    #[track_caller]
    fn check(role: Role, steps: Vec<(In, Vec<Action>)>) -> Readiness {
        let mut r = Readiness::new(role);
        for (i, (input, expected)) in steps.into_iter().enumerate() {
            let got = feed(&mut r, input);
            assert_eq!(got, expected, "step {i}: {input:?}");
        }
        r
    }

    #[test]
    fn component_flow() {
        use Cmd::*;
        let r = check(
            component("g"),
            vec![
                (Tick, vec![send("g", Ready)]),
                (Conn, vec![send("g", Ready)]),
                (cmd("g", "my_own_command"), vec![]),
                (cmd("g", "req_ready"), vec![send("g", Ready)]),
                (cmd("g", "start"), vec![Action::Started]),
                (cmd("g", "start"), vec![]),
                (Tick, vec![]),
                (Conn, vec![]),
                // A restarted controller asks again: answer even when started.
                (cmd("g", "req_ready"), vec![send("g", Ready)]),
                (cmd("g", "start"), vec![]),
                (cmd("g", "exit"), vec![Action::ExitRequested]),
                (cmd("g", "exit"), vec![]),
                (cmd("g", "req_ready"), vec![]),
            ],
        );
        assert!(r.is_started());
        assert!(r.exit_requested());
        assert_eq!(r.state(), State::Started);
        assert_eq!(r.pending().count(), 0);
    }

    #[test]
    fn component_reconnects_until_started() {
        use Cmd::*;
        let r = check(
            component("g"),
            vec![
                (Conn, vec![send("g", Ready)]),
                (Conn, vec![send("g", Ready)]),
                (Conn, vec![send("g", Ready)]),
                (cmd("g", "start"), vec![Action::Started]),
                (Conn, vec![]),
            ],
        );
        assert!(r.is_started());
    }

    #[test]
    fn component_refuses_commands_from_others() {
        use Cmd::*;
        let r = check(
            component("g"),
            vec![
                (Conn, vec![send("g", Ready)]),
                (
                    cmd("x", "ready"),
                    vec![unexpected("x", Ready, Reason::NotAController)],
                ),
                (
                    cmd("x", "start"),
                    vec![unexpected("x", Start, Reason::NotTheController)],
                ),
                (
                    cmd("x", "req_ready"),
                    vec![unexpected("x", ReqReady, Reason::NotTheController)],
                ),
                (Tick, vec![send("g", Ready)]),
                // Anyone may ask a container to exit.
                (cmd("x", "exit"), vec![Action::ExitRequested]),
                (Tick, vec![]),
                (Conn, vec![]),
                (cmd("g", "start"), vec![]),
            ],
        );
        assert!(!r.is_started());
        assert_eq!(r.state(), State::AwaitingStart);
    }

    #[test]
    fn global_controller_flow() {
        use Cmd::*;
        let app = Action::Report(ReadyType::App);
        let r = check(
            controller(&["a", "b"], None),
            vec![
                (
                    Conn,
                    vec![
                        Action::Report(ReadyType::Controller),
                        send("a", ReqReady),
                        send("b", ReqReady),
                    ],
                ),
                (cmd("a", "ready"), vec![]),
                (cmd("a", "ready"), vec![]),
                (
                    cmd("z", "ready"),
                    vec![unexpected("z", Ready, Reason::NotATarget)],
                ),
                (cmd("a", "app_data"), vec![]),
                (Tick, vec![send("b", ReqReady)]),
                (
                    Conn,
                    vec![
                        Action::Report(ReadyType::Controller),
                        send("a", ReqReady),
                        send("b", ReqReady),
                    ],
                ),
                (
                    cmd("b", "ready"),
                    vec![
                        send("a", Start),
                        send("b", Start),
                        app.clone(),
                        Action::Started,
                    ],
                ),
                (Tick, vec![]),
                (Conn, vec![]),
                // A restarted target: start everyone again, never Started twice.
                (
                    cmd("a", "ready"),
                    vec![send("a", Start), send("b", Start), app.clone()],
                ),
                (
                    cmd("z", "ready"),
                    vec![unexpected("z", Ready, Reason::NotATarget)],
                ),
                (
                    cmd("a", "start"),
                    vec![unexpected("a", Start, Reason::NoController)],
                ),
                (
                    cmd("a", "req_ready"),
                    vec![unexpected("a", ReqReady, Reason::NoController)],
                ),
            ],
        );
        assert!(r.is_started());
        assert!(!r.exit_requested());
    }

    #[test]
    fn local_controller_flow() {
        use Cmd::*;
        let r = check(
            controller(&["a", "b"], Some("g")),
            vec![
                (
                    Conn,
                    vec![
                        Action::Report(ReadyType::Controller),
                        send("a", ReqReady),
                        send("b", ReqReady),
                    ],
                ),
                // Not all answered yet: nothing to tell upstream.
                (cmd("g", "req_ready"), vec![]),
                (cmd("b", "ready"), vec![]),
                (Tick, vec![send("a", ReqReady)]),
                (cmd("a", "ready"), vec![send("g", Ready)]),
                (cmd("a", "ready"), vec![]),
                (Tick, vec![send("g", Ready)]),
                (cmd("g", "req_ready"), vec![send("g", Ready)]),
                (
                    Conn,
                    vec![
                        Action::Report(ReadyType::Controller),
                        send("a", ReqReady),
                        send("b", ReqReady),
                        send("g", Ready),
                    ],
                ),
                (
                    cmd("x", "req_ready"),
                    vec![unexpected("x", ReqReady, Reason::NotTheController)],
                ),
                (
                    cmd("a", "start"),
                    vec![unexpected("a", Start, Reason::NotTheController)],
                ),
                (
                    cmd("g", "start"),
                    vec![send("a", Start), send("b", Start), Action::Started],
                ),
                (cmd("g", "start"), vec![]),
                (Tick, vec![]),
                (Conn, vec![]),
                // A restarted target: start the targets again, no report.
                (cmd("b", "ready"), vec![send("a", Start), send("b", Start)]),
                // A restarted upstream asks again.
                (cmd("g", "req_ready"), vec![send("g", Ready)]),
                (cmd("g", "exit"), vec![Action::ExitRequested]),
                (cmd("b", "ready"), vec![]),
            ],
        );
        assert!(r.is_started());
        assert!(r.exit_requested());
    }

    #[test]
    fn controller_exit_before_start_ends_the_handshake() {
        use Cmd::*;
        let r = check(
            controller(&["a"], None),
            vec![
                (
                    Conn,
                    vec![Action::Report(ReadyType::Controller), send("a", ReqReady)],
                ),
                (cmd("x", "exit"), vec![Action::ExitRequested]),
                (cmd("a", "ready"), vec![]),
                (cmd("z", "ready"), vec![]),
                (Tick, vec![]),
                (Conn, vec![]),
            ],
        );
        assert!(!r.is_started());
        assert!(r.exit_requested());
        assert_eq!(r.pending().collect::<Vec<_>>(), [&name("a")]);
    }

    #[test]
    fn controllers_without_targets() {
        use Cmd::*;
        check(
            controller(&[], None),
            vec![
                (
                    Conn,
                    vec![
                        Action::Report(ReadyType::Controller),
                        Action::Report(ReadyType::App),
                        Action::Started,
                    ],
                ),
                (Conn, vec![]),
            ],
        );
        check(
            controller(&[], Some("g")),
            vec![
                (
                    Conn,
                    vec![Action::Report(ReadyType::Controller), send("g", Ready)],
                ),
                (Tick, vec![send("g", Ready)]),
                (cmd("g", "start"), vec![Action::Started]),
            ],
        );
    }

    #[test]
    fn local_controller_ignores_start_until_its_targets_answered() {
        use Cmd::*;
        // A restarted local controller may hear the upstream's re-broadcast
        // `start` before its own targets answered.
        let r = check(
            controller(&["a", "b"], Some("g")),
            vec![
                (
                    Conn,
                    vec![
                        Action::Report(ReadyType::Controller),
                        send("a", ReqReady),
                        send("b", ReqReady),
                    ],
                ),
                (cmd("g", "start"), vec![]),
                (cmd("a", "ready"), vec![]),
                (Tick, vec![send("b", ReqReady)]),
                (cmd("g", "start"), vec![]),
                (cmd("b", "ready"), vec![send("g", Ready)]),
                (
                    cmd("g", "start"),
                    vec![send("a", Start), send("b", Start), Action::Started],
                ),
            ],
        );
        assert!(r.is_started());
    }

    #[test]
    fn duplicate_targets_are_waited_for_once() {
        use Cmd::*;
        let r = check(
            controller(&["a", "a", "b"], None),
            vec![
                (
                    Conn,
                    vec![
                        Action::Report(ReadyType::Controller),
                        send("a", ReqReady),
                        send("b", ReqReady),
                    ],
                ),
                (cmd("a", "ready"), vec![]),
            ],
        );
        assert_eq!(r.pending().collect::<Vec<_>>(), [&name("b")]);
        assert_eq!(r.role(), &controller(&["a", "b"], None));
    }

    #[test]
    fn state_and_pending() {
        let mut r = Readiness::new(controller(&["a", "b"], Some("g")));
        assert_eq!(r.state(), State::Collecting);
        assert_eq!(r.pending().collect::<Vec<_>>(), [&name("a"), &name("b")]);
        feed(&mut r, cmd("b", "ready"));
        assert_eq!(r.pending().collect::<Vec<_>>(), [&name("a")]);
        feed(&mut r, cmd("a", "ready"));
        assert_eq!(r.state(), State::AwaitingStart);
        assert_eq!(r.pending().count(), 0);
        feed(&mut r, cmd("g", "start"));
        assert_eq!(r.state(), State::Started);

        let r = Readiness::new(component("g"));
        assert_eq!(r.state(), State::AwaitingStart);
        assert_eq!(r.pending().count(), 0);
        assert!(!r.is_started());
    }

    #[test]
    fn wire_names() {
        #[track_caller]
        fn check(cmd: Cmd, wire: &str) {
            assert_eq!(cmd.as_str(), wire);
            assert_eq!(cmd.to_string(), wire);
            assert_eq!(Cmd::from_wire(wire), Some(cmd));
        }
        check(Cmd::Ready, "ready");
        check(Cmd::Start, "start");
        check(Cmd::Exit, "exit");
        check(Cmd::ReqReady, "req_ready");
        assert_eq!(Cmd::from_wire("Ready"), None);
        assert_eq!(Cmd::from_wire(""), None);
        assert_eq!(ReadyType::Controller.to_string(), "controller");
        assert_eq!(ReadyType::App.to_string(), "app");
    }

    #[test]
    fn unexpected_display() {
        #[track_caller]
        fn check(cmd: Cmd, reason: Reason, expected: &str) {
            let e = UnexpectedCommand {
                from: name("x"),
                cmd,
                reason,
            };
            assert_eq!(e.to_string(), expected);
        }
        check(
            Cmd::Ready,
            Reason::NotAController,
            r#"unexpected `ready` from "x": this container is a component, not a controller"#,
        );
        check(
            Cmd::Start,
            Reason::NotTheController,
            r#"unexpected `start` from "x": not this container's controller"#,
        );
        check(
            Cmd::ReqReady,
            Reason::NoController,
            r#"unexpected `req_ready` from "x": this is the global controller, it has no controller"#,
        );
    }

    /// An in-test network: several machines wired together through a queue of
    /// in-flight messages, delivered in an order the test chooses.
    #[derive(Debug)]
    struct Net {
        nodes: Vec<Node>,
        queue: VecDeque<Item>,
        /// Set once any node restarted; some safety checks only hold without.
        restarted: bool,
    }

    #[derive(Debug)]
    struct Node {
        name: ContainerName,
        role: Role,
        machine: Readiness,
        /// `Started` actions of the current instance.
        started: u32,
        /// Whether any instance of this node has ever sent `ready`.
        announced: bool,
        app_reports: u32,
    }

    #[derive(Debug, Clone)]
    enum Item {
        Connect(usize),
        Msg {
            from: ContainerName,
            to: Peer,
            cmd: Cmd,
        },
    }

    impl Net {
        /// Global controller `g` over components `c1`, `c2` and local
        /// controller `l`, which is over components `c3`, `c4`; every node's
        /// first connect is queued.
        fn tree() -> Self {
            let roles = [
                ("g", controller(&["c1", "l", "c2"], None)),
                ("l", controller(&["c3", "c4"], Some("g"))),
                ("c1", component("g")),
                ("c2", component("g")),
                ("c3", component("l")),
                ("c4", component("l")),
            ];
            let nodes: Vec<Node> = roles
                .into_iter()
                .map(|(n, role)| Node {
                    name: name(n),
                    machine: Readiness::new(role.clone()),
                    role,
                    started: 0,
                    announced: false,
                    app_reports: 0,
                })
                .collect();
            let queue = (0..nodes.len()).map(Item::Connect).collect();
            Net {
                nodes,
                queue,
                restarted: false,
            }
        }

        fn index(&self, n: &str) -> usize {
            self.nodes.iter().position(|x| x.name == n).unwrap()
        }

        fn event(&mut self, i: usize, event: Event<'_>) {
            let actions = self.nodes[i].machine.handle(event);
            let all_announced = self
                .nodes
                .iter()
                .enumerate()
                .all(|(j, n)| j == i || n.announced);
            let restarted = self.restarted;
            let node = &mut self.nodes[i];
            for action in actions {
                match action {
                    Action::Send { to, cmd } => {
                        assert_eq!(to, peer(to.name.as_str()), "wrong broker");
                        if cmd == Cmd::Ready {
                            node.announced = true;
                        }
                        self.queue.push_back(Item::Msg {
                            from: node.name.clone(),
                            to,
                            cmd,
                        });
                    }
                    Action::Started => {
                        node.started += 1;
                        assert_eq!(node.started, 1, "{} started twice", node.name);
                        assert!(node.machine.is_started());
                        if matches!(node.role, Role::Controller { upstream: None, .. }) {
                            assert!(
                                restarted || all_announced,
                                "the app started before every container announced itself"
                            );
                        }
                    }
                    Action::Report(ReadyType::App) => node.app_reports += 1,
                    Action::Report(ReadyType::Controller) => {}
                    other => panic!("{}: unexpected action {other:?}", node.name),
                }
            }
        }

        fn deliver(&mut self, item: Item) {
            match item {
                Item::Connect(i) => self.event(i, Event::Connected),
                Item::Msg { from, to, cmd } => {
                    let i = self.index(to.name.as_str());
                    self.event(
                        i,
                        Event::Command {
                            from: &from,
                            cmd: cmd.as_str(),
                        },
                    );
                }
            }
        }

        /// A fresh instance of node `i`, which then connects.
        fn restart(&mut self, i: usize) {
            self.restarted = true;
            let node = &mut self.nodes[i];
            node.machine = Readiness::new(node.role.clone());
            node.started = 0;
            self.deliver(Item::Connect(i));
        }

        fn tick_all(&mut self) {
            for i in 0..self.nodes.len() {
                self.event(i, Event::Timeout);
            }
        }

        /// Delivers everything in order, ticking whenever the queue runs dry,
        /// until everyone has started.
        fn settle(&mut self) {
            for _ in 0..10 {
                let mut budget = 10_000;
                while let Some(item) = self.queue.pop_front() {
                    self.deliver(item);
                    budget -= 1;
                    assert!(budget > 0, "the network does not quiesce");
                }
                if self.nodes.iter().all(|n| n.machine.is_started()) {
                    return;
                }
                self.tick_all();
            }
            panic!("not everyone started: {self:#?}");
        }

        #[track_caller]
        fn assert_all_started_once(&self) {
            for n in &self.nodes {
                assert_eq!(n.started, 1, "{} started {} times", n.name, n.started);
            }
            assert!(self.nodes[self.index("g")].app_reports >= 1);
        }
    }

    #[test]
    fn wired_tree_starts_everyone_once() {
        let mut net = Net::tree();
        net.settle();
        net.assert_all_started_once();
        // Nothing left to do.
        net.tick_all();
        assert!(net.queue.is_empty());
    }

    #[test]
    fn wired_tree_survives_restarts() {
        for who in ["g", "l", "c1", "c3"] {
            let mut net = Net::tree();
            net.settle();
            let i = net.index(who);
            net.restart(i);
            net.settle();
            net.assert_all_started_once();
        }
    }

    #[test]
    fn restarted_global_controller_restarts_the_handshake() {
        let mut net = Net::tree();
        net.settle();
        let g = net.index("g");
        let reports = net.nodes[g].app_reports;
        net.restart(g);
        assert!(!net.nodes[g].machine.is_started());
        net.settle();
        // The new instance collected everyone's `ready` again and started;
        // the components, already started, did not start twice.
        net.assert_all_started_once();
        assert!(net.nodes[g].app_reports > reports);
    }

    #[test]
    fn wired_tree_recovers_from_lost_messages() {
        // Lose every message sent before anyone ticks: only retries can help.
        let mut net = Net::tree();
        while let Some(item) = net.queue.pop_front() {
            if let Item::Connect(_) = item {
                net.deliver(item);
            }
        }
        net.settle();
        net.assert_all_started_once();
    }

    proptest! {
        #[test]
        fn any_delivery_order_starts_everyone_once(
            ops in prop::collection::vec((0u8..20, any::<u16>()), 0..300),
            allow_restarts in any::<bool>(),
        ) {
            let mut net = Net::tree();
            for (op, pick) in ops {
                let pick = usize::from(pick);
                let n = net.nodes.len();
                if net.queue.is_empty() {
                    net.tick_all();
                    continue;
                }
                let at = pick % net.queue.len();
                match op {
                    0 | 1 => {
                        let Some(item) = net.queue.get(at).cloned() else { continue };
                        net.deliver(item);
                    }
                    2 => {
                        if let Some(Item::Msg { .. }) = net.queue.get(at) {
                            net.queue.remove(at);
                        }
                    }
                    3 => net.event(pick % n, Event::Timeout),
                    4 if allow_restarts => net.restart(pick % n),
                    _ => {
                        let Some(item) = net.queue.remove(at) else { continue };
                        net.deliver(item);
                    }
                }
            }
            net.settle();
            net.assert_all_started_once();
        }
    }
}
