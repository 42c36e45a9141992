//! A session between its connections, as the spec rules it: the will published at once or after its delay,
//! the session kept until it expires or ended with its connection, and what a new connection does to both.
//!
//! The deadlines are plain data in the [`Session`]; time is always passed in. The broker arms one timer for
//! [`Session::poll_timeout`] and calls [`Session::handle_timeout`] when it fires, as `quinn-proto` asks of its
//! driver. What the session asks in return comes back as a [`Lapse`]: a will to publish, and whether the
//! session is over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractmq_codec::Will;

use crate::message::Message;
use crate::session::Session;

/// What the broker must do after a call: publish `will`, and forget the session if `ended`.
#[derive(Debug, Default, PartialEq)]
pub struct Lapse {
    /// A will to publish now.
    pub will: Option<Message>,
    /// The session is over: the broker forgets it.
    pub ended: bool,
}

/// A new connection attached to the session.
#[derive(Debug, PartialEq)]
pub struct Attached {
    /// The CONNACK's Session Present flag.
    pub session_present: bool,
    /// Filters of the session that was discarded, for the broker to remove from its index.
    pub dropped: Vec<String>,
    /// The will of the connection (or of the session) replaced, to publish now.
    pub will: Option<Message>,
}

impl Session {
    /// A connection attaches; `resume` if the client asked for the existing session (Clean Start 0 on a
    /// session that exists). A session whose expiry is 0 ends with its connection, so it is never resumed,
    /// even by a takeover [MQTT-3.1.2-4, 3.1.2-5, 3.1.2-6]. Its timers stop: a delayed will is cancelled when
    /// the session is resumed [MQTT-3.1.3-9], and published when the session ends instead (the old
    /// connection's will is published unless the new one resumes with a will delay [3.1.3.2.2, non-normative]).
    pub fn attach(&mut self, resume: bool, now: Instant) -> Attached {
        let session_present = resume && self.expiry_interval != 0;
        let will = self.take_will_on_takeover(session_present, now);
        let mut dropped = Vec::new();
        if !session_present {
            dropped.extend(self.subscriptions.keys().cloned());
            self.clear();
        }
        self.will_due = None;
        self.expires_at = None;
        Attached {
            session_present,
            dropped,
            will,
        }
    }

    /// The session is taken over (by a connection here or on another node): the will it holds is published
    /// unless the session is resumed and the will asked for a delay [MQTT-3.1.3-9]; it is gone either way.
    pub fn take_will_on_takeover(&mut self, resumed: bool, now: Instant) -> Option<Message> {
        let will = self.will.take()?;
        let delayed = will.delay_interval.unwrap_or(0) > 0;
        (!resumed || !delayed).then(|| will_message(will, &self.client_id, now))
    }

    /// The connection closed; `publish_will` unless the client ended it normally (DISCONNECT 0x00, which
    /// deletes the will [MQTT-3.1.2-10]). The will goes now, or after its delay if the session outlives it
    /// [MQTT-3.1.2-8]; a session with expiry 0 ends now, others expire after their interval [MQTT-3.1.2-23].
    pub fn disconnected(&mut self, publish_will: bool, now: Instant) -> Lapse {
        let mut lapse = Lapse::default();
        if !publish_will {
            self.will = None;
        }
        let expiry = self.expiry_interval;
        if let Some(will) = self.will.take() {
            let delay = will.delay_interval.unwrap_or(0);
            if delay > 0 && expiry > 0 {
                self.will_due = Some(now + seconds(delay.min(expiry)));
                self.will = Some(will);
            } else {
                lapse.will = Some(will_message(will, &self.client_id, now));
            }
        }
        match expiry {
            0 => lapse.ended = true,
            u32::MAX => {}
            secs => self.expires_at = Some(now + seconds(secs)),
        }
        lapse
    }

    /// The actor serving the session was restarted: a session that was offline keeps its deadlines; one that
    /// had a connection lost it abnormally.
    pub fn recovered(&mut self, now: Instant) -> Lapse {
        if self.poll_timeout().is_some() {
            return Lapse::default();
        }
        self.disconnected(true, now)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, if a will or the session's end is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.will_due, self.expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The clock reached `now`: publish a will whose delay is over, end a session whose expiry is over (its
    /// will goes with it if still pending [MQTT-3.1.2-8]).
    pub fn handle_timeout(&mut self, now: Instant) -> Lapse {
        let mut lapse = Lapse::default();
        let will_due = self.will_due.is_some_and(|at| at <= now);
        let expired = self.expires_at.is_some_and(|at| at <= now);
        if will_due || expired {
            self.will_due = None;
            lapse.will = self.will.take().map(|will| will_message(will, &self.client_id, now));
        }
        if expired {
            self.expires_at = None;
            lapse.ended = true;
        }
        lapse
    }
}

/// The message a will becomes when it is published, received `now` (its Message Expiry counts from then).
pub fn will_message(will: Will, client_id: &Arc<str>, now: Instant) -> Message {
    let mut properties = will.properties;
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    Message {
        topic: will.topic.into(),
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties,
        publisher: Some(client_id.clone()),
        received_at: now,
        origin: None,
        frames: Default::default(),
    }
}

fn seconds(secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs))
}
