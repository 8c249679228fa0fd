//! The endpoint as a state machine with no I/O (`docs/protocol.md` §8): bytes from
//! the gateway go in ([`Endpoint::receive`]), events come out
//! ([`Endpoint::poll_event`]), bytes for the gateway wait in
//! [`Endpoint::output`]; time is passed in.
//!
//! Several dials may be in flight, also to the same remote ID: the gateway
//! answers one endpoint's dials in order, so each Accept or Refuse belongs
//! to the oldest pending dial for its remote ID.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use super::config::EndpointConfig;
use crate::snet::SnetError;
use crate::wire::{
    self, Challenge, Command, CommandError, FrameError, Origin, Status, CHALLENGE_LEN,
    FEATURE_GROUPS,
};

/// Which side of the gateway an endpoint is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A game client.
    Client,
    /// A backend server (does the handshake).
    Server,
}

/// Identifies one call to [`Endpoint::dial`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DialId(pub u64);

/// Something that happened on the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The endpoint can dial and be dialed (a server passed the handshake;
    /// a client is ready at once).
    Ready,
    /// A dial succeeded: vconn `conn_id` to `remote_id` is open.
    Dialed {
        /// The dial.
        dial: DialId,
        /// The new vconn.
        conn_id: u32,
        /// The peer dialed.
        remote_id: u32,
    },
    /// A dial was refused (no such peer, or a limit was reached).
    DialRefused {
        /// The dial.
        dial: DialId,
        /// The peer dialed.
        remote_id: u32,
    },
    /// A dial got no answer because the endpoint stopped.
    DialFailed {
        /// The dial.
        dial: DialId,
    },
    /// A peer opened vconn `conn_id` to this endpoint.
    Accepted {
        /// The new vconn.
        conn_id: u32,
        /// The dialer's ID.
        remote_id: u32,
    },
    /// A message arrived on a vconn.
    Message {
        /// The vconn.
        conn_id: u32,
        /// The message bytes.
        data: Vec<u8>,
    },
    /// A vconn was closed (by the other end, or the gateway).
    Closed {
        /// The vconn.
        conn_id: u32,
    },
    /// The gateway answered [`Endpoint::probe_features`]: `bits` are the
    /// extensions it supports (0 from a gateway that has none, such as the
    /// Go one).
    Features {
        /// The probe.
        dial: DialId,
        /// Supported extensions ([`FEATURE_GROUPS`]).
        bits: u32,
    },
    /// The gateway refused to add vconn `conn_id` to `group`: a group
    /// limit was reached.
    JoinRefused {
        /// The group.
        group: u32,
        /// The vconn.
        conn_id: u32,
    },
    /// A Ping went unanswered for the ping timeout; `kept` is the timeout
    /// callback's answer (false when there is none, and the endpoint closed).
    PingTimeout {
        /// Whether the connection was kept.
        kept: bool,
    },
}

/// Why an endpoint stopped working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// The gateway sent a frame with a bad Length.
    Frame(FrameError),
    /// The gateway sent a malformed or forbidden command.
    Command(CommandError),
    /// The gateway answered a dial that was never made.
    UnexpectedReply {
        /// The command's remote ID.
        remote_id: u32,
    },
    /// The gateway closed the connection during the server handshake: the
    /// key was wrong, or the gateway is not accepting servers.
    HandshakeRejected,
    /// The connection ended.
    Disconnected,
    /// No answer to a Ping within the ping timeout, and the callback (or
    /// its absence) said close.
    PingTimeout,
    /// The endpoint was closed locally.
    Closed,
    /// The snet stream could not go on: the gateway refused the handshake
    /// or a reconnect (it no longer knows the stream, or the resend buffer
    /// no longer holds what was lost).
    Snet(SnetError),
    /// The snet link stayed broken for longer than the endpoint keeps
    /// redialling.
    SnetGaveUp,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Frame(e) => write!(f, "gateway sent a bad frame: {e}"),
            EndpointError::Command(e) => write!(f, "gateway sent a bad command: {e}"),
            EndpointError::UnexpectedReply { remote_id } => {
                write!(
                    f,
                    "gateway answered a dial to {remote_id} that was never made"
                )
            }
            EndpointError::HandshakeRejected => f.write_str(
                "gateway closed the connection during the server handshake (wrong key?)",
            ),
            EndpointError::Disconnected => f.write_str("connection to the gateway ended"),
            EndpointError::PingTimeout => f.write_str("gateway did not answer pings in time"),
            EndpointError::Closed => f.write_str("endpoint closed"),
            EndpointError::Snet(e) => write!(f, "snet stream failed: the gateway {e}"),
            EndpointError::SnetGaveUp => {
                f.write_str("snet link to the gateway stayed broken; gave up redialling")
            }
        }
    }
}

impl std::error::Error for EndpointError {}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The vconn is not open (closed, or never was).
    NotOpen(u32),
    /// The message is longer than `max_packet` allows.
    TooLarge {
        /// Its length.
        len: usize,
        /// The most a vconn carries.
        max: usize,
    },
    /// The endpoint is not working.
    Endpoint(EndpointError),
    /// The message format could not encode the value.
    Format(super::config::FormatError),
    /// A fan-out call (multicast, groups) on an endpoint whose gateway has
    /// not said it supports them ([`Endpoint::probe_features`]), or on a
    /// client.
    Unsupported,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotOpen(id) => write!(f, "vconn {id} is not open"),
            SendError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes is over the {max}-byte limit")
            }
            SendError::Endpoint(e) => e.fmt(f),
            SendError::Format(e) => e.fmt(f),
            SendError::Unsupported => f.write_str(
                "the gateway has not said it supports multicast and groups (probe it first; \
                 only servers may use them)",
            ),
        }
    }
}

impl std::error::Error for SendError {}

/// The remote ID a server dials to ask the gateway for its extensions
/// (no client has ID 0).
const PROBE_ID: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A server waiting for the gateway's challenge.
    AwaitChallenge,
    /// A server that answered; waiting for its Ping to come back.
    Confirming,
    Ready,
    Failed,
}

/// One endpoint's protocol state.
///
/// Bytes from the gateway go in through [`receive`](Self::receive), bytes
/// for it come out of [`output`](Self::output), what happened comes out of
/// [`poll_event`](Self::poll_event), and time comes in through
/// [`handle_timeout`](Self::handle_timeout); no I/O, no clock.
///
/// ```
/// use std::time::Instant;
/// use uniway::endpoint::{Endpoint, EndpointConfig, Event, Role};
/// use uniway::wire::{self, Command};
///
/// let mut ep = Endpoint::new(Role::Client, EndpointConfig::default(), Instant::now());
/// assert_eq!(ep.poll_event(), Some(Event::Ready)); // a client needs no handshake
///
/// // Dialing server 1 puts a Dial frame in the output.
/// let dial = ep.dial(1).unwrap();
/// assert_eq!(ep.take_output(), Command::Dial { remote_id: 1 }.to_bytes().as_ref());
///
/// // The gateway answers Accept(9527, 1): the vconn is open.
/// let mut from_gateway = Vec::new();
/// Command::Accept { conn_id: 9527, remote_id: 1 }.encode(&mut from_gateway);
/// ep.receive(&from_gateway).unwrap();
/// assert_eq!(ep.poll_event(), Some(Event::Dialed { dial, conn_id: 9527, remote_id: 1 }));
///
/// // Messages on it become data frames.
/// ep.send(9527, b"Hello").unwrap();
/// let mut frame = Vec::new();
/// wire::encode_frame(&mut frame, 9527, b"Hello");
/// assert_eq!(ep.take_output(), frame);
/// ```
pub struct Endpoint {
    role: Role,
    cfg: EndpointConfig,
    phase: Phase,
    failure: Option<EndpointError>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    events: VecDeque<Event>,
    /// Remote ID → pending dials, oldest first.
    dials: HashMap<u32, VecDeque<DialId>>,
    next_dial: u64,
    /// Open vconns → remote ID.
    vconns: HashMap<u32, u32>,
    next_ping: Option<Instant>,
    /// When the oldest unanswered Ping was sent.
    ping_sent: Option<Instant>,
    /// What the gateway answered to the last feature probe.
    features: Option<u32>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("vconns", &self.vconns.len())
            .field(
                "dials_pending",
                &self.dials.values().map(VecDeque::len).sum::<usize>(),
            )
            .field("output_bytes", &self.out.len())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// A new endpoint in `role`; `cfg` must have passed `validate`.
    pub fn new(role: Role, cfg: EndpointConfig, now: Instant) -> Endpoint {
        let mut e = Endpoint {
            role,
            phase: match role {
                Role::Client => Phase::Ready,
                Role::Server => Phase::AwaitChallenge,
            },
            failure: None,
            inbuf: Vec::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            dials: HashMap::new(),
            next_dial: 0,
            vconns: HashMap::new(),
            next_ping: cfg.ping_interval.map(|i| now + i),
            ping_sent: None,
            features: None,
            cfg,
        };
        if role == Role::Client {
            e.events.push_back(Event::Ready);
        }
        e
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether dials and sends are possible.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Why the endpoint stopped, if it did.
    pub fn failure(&self) -> Option<&EndpointError> {
        self.failure.as_ref()
    }

    /// Open vconns.
    pub fn vconn_count(&self) -> usize {
        self.vconns.len()
    }

    /// The remote ID of an open vconn.
    pub fn remote_of(&self, conn_id: u32) -> Option<u32> {
        self.vconns.get(&conn_id).copied()
    }

    /// Dials waiting for an answer.
    pub fn pending_dials(&self) -> usize {
        self.dials.values().map(VecDeque::len).sum()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes waiting to be written to the gateway.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Drops `n` bytes of output that were written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Takes all waiting output.
    #[must_use = "the bytes taken must be written to the gateway"]
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn check(&self) -> Result<(), EndpointError> {
        match &self.failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: EndpointError) -> EndpointError {
        if self.failure.is_none() {
            self.phase = Phase::Failed;
            self.failure = Some(e.clone());
            self.out.clear();
            // Every vconn ends and every pending dial fails.
            for (_, dials) in self.dials.drain() {
                for dial in dials {
                    self.events.push_back(Event::DialFailed { dial });
                }
            }
            let mut ids: Vec<u32> = self.vconns.drain().map(|(id, _)| id).collect();
            ids.sort_unstable();
            for conn_id in ids {
                self.events.push_back(Event::Closed { conn_id });
            }
        }
        self.failure.clone().unwrap_or(e)
    }

    /// Dials `remote_id`; the answer comes as `Dialed` or `DialRefused`.
    pub fn dial(&mut self, remote_id: u32) -> Result<DialId, EndpointError> {
        self.check()?;
        let id = DialId(self.next_dial);
        self.next_dial += 1;
        self.dials.entry(remote_id).or_default().push_back(id);
        Command::Dial { remote_id }.encode(&mut self.out);
        Ok(id)
    }

    /// Queues `msg` on vconn `conn_id`.
    pub fn send(&mut self, conn_id: u32, msg: &[u8]) -> Result<(), SendError> {
        self.check().map_err(SendError::Endpoint)?;
        if !self.vconns.contains_key(&conn_id) {
            return Err(SendError::NotOpen(conn_id));
        }
        if msg.len() > self.cfg.max_message() {
            return Err(SendError::TooLarge {
                len: msg.len(),
                max: self.cfg.max_message(),
            });
        }
        wire::encode_frame(&mut self.out, conn_id, msg);
        Ok(())
    }

    /// Asks the gateway which extensions it supports (a server's Dial(0),
    /// `docs/protocol.md` §10): the answer comes as [`Event::Features`]. A
    /// gateway without extensions (the Go one) refuses the dial, which
    /// gives `bits: 0`; nothing else changes.
    pub fn probe_features(&mut self) -> Result<DialId, EndpointError> {
        self.dial(PROBE_ID)
    }

    /// What the gateway answered to the last probe (`None`: not asked, or
    /// no answer yet).
    pub fn features(&self) -> Option<u32> {
        self.features
    }

    /// Whether the fan-out calls may be used: a server whose gateway said
    /// it supports them.
    pub fn fan_out_supported(&self) -> bool {
        self.role == Role::Server && self.features.is_some_and(|b| b & FEATURE_GROUPS != 0)
    }

    /// Checks a fan-out call: supported, the endpoint working, every conn
    /// ID open, and the frame within `max_packet`.
    fn fan_out_check(&self, ids: &[u32], words: usize, message: usize) -> Result<(), SendError> {
        self.check().map_err(SendError::Endpoint)?;
        if !self.fan_out_supported() {
            return Err(SendError::Unsupported);
        }
        if let Some(&id) = ids.iter().find(|id| !self.vconns.contains_key(id)) {
            return Err(SendError::NotOpen(id));
        }
        let max = self.cfg.max_packet;
        match wire::group_frame_length(words, ids.len(), message) {
            Some(length) if length <= max => Ok(()),
            _ => {
                let overhead = 1 + 4 * (words + ids.len());
                Err(SendError::TooLarge {
                    len: message,
                    max: self.cfg.max_message().saturating_sub(overhead),
                })
            }
        }
    }

    /// Queues one `msg` for every vconn in `conn_ids` (a Multicast: the
    /// message crosses the link once). Each must be open.
    pub fn multicast(&mut self, conn_ids: &[u32], msg: &[u8]) -> Result<(), SendError> {
        self.fan_out_check(conn_ids, 1, msg.len())?;
        wire::encode_multicast(&mut self.out, conn_ids, msg);
        Ok(())
    }

    /// Adds the vconns to `group` (a number this server chooses). A vconn
    /// leaves its groups when it closes; a join over a limit comes back as
    /// [`Event::JoinRefused`].
    pub fn join(&mut self, group: u32, conn_ids: &[u32]) -> Result<(), SendError> {
        if conn_ids.is_empty() {
            return self.fan_out_check(&[], 1, 0);
        }
        self.fan_out_check(conn_ids, 1, 0)?;
        wire::encode_join(&mut self.out, group, conn_ids);
        Ok(())
    }

    /// Takes the vconns out of `group`. Vconns this endpoint no longer has
    /// are skipped (they left when they closed).
    pub fn leave(&mut self, group: u32, conn_ids: &[u32]) -> Result<(), SendError> {
        let open: Vec<u32> = conn_ids
            .iter()
            .copied()
            .filter(|c| self.vconns.contains_key(c))
            .collect();
        if open.is_empty() {
            return self.fan_out_check(&[], 1, 0);
        }
        self.fan_out_check(&open, 1, 0)?;
        wire::encode_leave(&mut self.out, group, &open);
        Ok(())
    }

    /// Empties `group`.
    pub fn dissolve(&mut self, group: u32) -> Result<(), SendError> {
        self.fan_out_check(&[], 1, 0)?;
        wire::encode_leave(&mut self.out, group, &[]);
        Ok(())
    }

    /// Queues one `msg` for every member of `group` but those in `except`
    /// (a GroupSend). Conn IDs in `except` need not be open.
    pub fn send_to_group(
        &mut self,
        group: u32,
        msg: &[u8],
        except: &[u32],
    ) -> Result<(), SendError> {
        self.fan_out_check(&[], 2 + except.len(), msg.len())?;
        wire::encode_group_send(&mut self.out, group, except, msg);
        Ok(())
    }

    /// Closes vconn `conn_id`. Messages for it still in flight are dropped.
    pub fn close_vconn(&mut self, conn_id: u32) {
        if self.failure.is_none() && self.vconns.remove(&conn_id).is_some() {
            Command::Close { conn_id }.encode(&mut self.out);
        }
    }

    /// Closes the endpoint: every vconn ends, pending dials fail.
    pub fn close(&mut self) {
        self.fail(EndpointError::Closed);
    }

    /// Ends the endpoint with `e` (e.g. a failure of the link under it);
    /// returns the failure in force.
    pub fn failed(&mut self, e: EndpointError) -> EndpointError {
        self.fail(e)
    }

    /// The link under an snet stream broke: the keep-alive pauses (an
    /// unanswered Ping is not the gateway's fault) until
    /// [`link_up`](Self::link_up). Output keeps queueing.
    pub fn link_down(&mut self) {
        self.ping_sent = None;
        self.next_ping = None;
    }

    /// The snet stream is back on a new link: the keep-alive starts again.
    pub fn link_up(&mut self, now: Instant) {
        self.next_ping = self.cfg.ping_interval.map(|i| now + i);
    }

    /// The connection to the gateway ended.
    pub fn disconnected(&mut self) -> EndpointError {
        let e = match self.phase {
            Phase::AwaitChallenge | Phase::Confirming => EndpointError::HandshakeRejected,
            _ => EndpointError::Disconnected,
        };
        self.fail(e)
    }

    /// Takes bytes read from the gateway.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), EndpointError> {
        self.check()?;
        self.inbuf.extend_from_slice(bytes);
        let mut at = 0;
        let result = self.parse(&mut at);
        self.inbuf.drain(..at);
        result.map_err(|e| self.fail(e))
    }

    fn parse(&mut self, at: &mut usize) -> Result<(), EndpointError> {
        if self.phase == Phase::AwaitChallenge {
            let Status::Complete(challenge) = Challenge::decode(&self.inbuf) else {
                return Ok(());
            };
            *at = CHALLENGE_LEN;
            let resp = challenge.respond(&self.cfg.auth_key, self.cfg.server_id);
            self.out.extend_from_slice(&resp.to_bytes());
            // A Ping right behind the answer: its echo proves the gateway
            // accepted the key (it closes the connection otherwise).
            Command::Ping.encode(&mut self.out);
            if self.cfg.probe_features {
                let _ = self.probe_features();
            }
            self.phase = Phase::Confirming;
        }
        loop {
            let frame = match wire::decode_frame(&self.inbuf[*at..], self.cfg.max_packet) {
                Ok(Status::Complete(f)) => f,
                Ok(Status::Partial) => return Ok(()),
                Err(e) => return Err(EndpointError::Frame(e)),
            };
            let n = frame.wire_len();
            if frame.is_command() {
                let cmd = Command::decode_from(Origin::Gateway, frame.message)
                    .map_err(EndpointError::Command)?;
                *at += n;
                self.on_command(cmd)?;
            } else {
                if self.vconns.contains_key(&frame.conn_id) {
                    self.events.push_back(Event::Message {
                        conn_id: frame.conn_id,
                        data: frame.message.to_vec(),
                    });
                }
                *at += n;
            }
        }
    }

    fn pop_dial(&mut self, remote_id: u32) -> Result<DialId, EndpointError> {
        let q = self
            .dials
            .get_mut(&remote_id)
            .ok_or(EndpointError::UnexpectedReply { remote_id })?;
        let dial = q
            .pop_front()
            .ok_or(EndpointError::UnexpectedReply { remote_id })?;
        if q.is_empty() {
            self.dials.remove(&remote_id);
        }
        Ok(dial)
    }

    fn on_command(&mut self, cmd: Command) -> Result<(), EndpointError> {
        match cmd {
            Command::Accept { conn_id, remote_id } => {
                let dial = self.pop_dial(remote_id)?;
                self.vconns.insert(conn_id, remote_id);
                self.events.push_back(Event::Dialed {
                    dial,
                    conn_id,
                    remote_id,
                });
            }
            Command::Features { bits } => {
                let dial = self.pop_dial(PROBE_ID)?;
                self.features = Some(bits);
                self.events.push_back(Event::Features { dial, bits });
            }
            Command::JoinRefused { group, conn_id } => {
                self.events.push_back(Event::JoinRefused { group, conn_id });
            }
            Command::Refuse {
                remote_id: PROBE_ID,
            } if self.role == Role::Server => {
                // A gateway without extensions: client 0 does not exist.
                let dial = self.pop_dial(PROBE_ID)?;
                self.features = Some(0);
                self.events.push_back(Event::Features { dial, bits: 0 });
            }
            Command::Refuse { remote_id } => {
                let dial = self.pop_dial(remote_id)?;
                self.events
                    .push_back(Event::DialRefused { dial, remote_id });
            }
            Command::Connect { conn_id, remote_id } => {
                self.vconns.insert(conn_id, remote_id);
                self.events
                    .push_back(Event::Accepted { conn_id, remote_id });
            }
            Command::Close { conn_id } => {
                if self.vconns.remove(&conn_id).is_some() {
                    self.events.push_back(Event::Closed { conn_id });
                }
            }
            Command::Ping => {
                self.ping_sent = None;
                if self.phase == Phase::Confirming {
                    self.phase = Phase::Ready;
                    self.events.push_back(Event::Ready);
                }
            }
            // Rejected by decode_from(Origin::Gateway, ..).
            Command::Dial { .. } => {}
        }
        Ok(())
    }

    /// How long the caller may wait, from `now`, before
    /// [`handle_timeout`](Self::handle_timeout) is needed (zero when it is
    /// due): the same signature as the gateway's and the driver's.
    #[must_use]
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        self.deadline().map(|at| at.saturating_duration_since(now))
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed, for a
    /// caller that combines the deadlines of several endpoints.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        if self.failure.is_some() {
            return None;
        }
        let deadline = self
            .ping_sent
            .zip(self.cfg.ping_timeout)
            .map(|(sent, t)| sent + t);
        match (self.next_ping, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends due Pings and checks the ping timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), EndpointError> {
        self.check()?;
        if let (Some(sent), Some(timeout)) = (self.ping_sent, self.cfg.ping_timeout) {
            if now >= sent + timeout {
                let kept = self.cfg.timeout_callback.as_ref().is_some_and(|cb| cb());
                self.events.push_back(Event::PingTimeout { kept });
                if !kept {
                    return Err(self.fail(EndpointError::PingTimeout));
                }
                self.ping_sent = None;
            }
        }
        if let (Some(at), Some(interval)) = (self.next_ping, self.cfg.ping_interval) {
            if now >= at {
                Command::Ping.encode(&mut self.out);
                self.ping_sent.get_or_insert(now);
                self.next_ping = Some(now + interval);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
