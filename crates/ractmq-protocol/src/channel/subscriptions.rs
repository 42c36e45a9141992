//! SUBSCRIBE and UNSUBSCRIBE: each filter checked against the spec and the broker's limits, the session's
//! subscriptions updated, the index changes and the retained-message decision handed to the broker, and the
//! SUBACK or UNSUBACK encoded.

use super::*;

impl Channel {
    pub(super) fn subscribe_in(&mut self, session: &mut Session, s: Subscribe, fx: &mut Effects) {
        let mut reasons = Vec::with_capacity(s.filters.len());
        // The first refusal's explanation, for the SUBACK's reason string.
        let mut why: Option<&str> = None;
        if s.subscription_identifier.is_some() && !self.limits.subscription_identifiers {
            return self.violation(
                reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "subscription identifiers are disabled on this broker",
                fx,
            );
        }
        for req in s.filters {
            let shared = parse_shared(&req.filter);
            let valid = match &shared {
                None => topic::valid_filter(&req.filter),
                Some(Ok(sf)) => topic::valid_filter(sf.filter),
                Some(Err(())) => false,
            };
            if !valid {
                reasons.push(reason::TOPIC_FILTER_INVALID);
                why.get_or_insert("invalid topic filter");
                continue;
            }
            let inner = match &shared {
                Some(Ok(sf)) => sf.filter,
                _ => req.filter.as_str(),
            };
            if !self.limits.wildcard_subscriptions && crate::topic::has_wildcard(inner) {
                // CONNACK told a 5.0 client: using them anyway is a Protocol Error (§3.2.2.3.11).
                if self.protocol.is_v5() {
                    let why = "wildcard subscription on a broker without them";
                    return self.violation(reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, why, fx);
                }
                reasons.push(reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED);
                continue;
            }
            if shared.is_some() {
                if !self.limits.shared_subscriptions {
                    // As for wildcards (§3.2.2.3.13); 3.x clients were told nothing and get a failure code.
                    if self.protocol.is_v5() {
                        let why = "shared subscription on a broker without them";
                        return self.violation(reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, why, fx);
                    }
                    reasons.push(reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
                    continue;
                }
                if req.no_local {
                    // A client would never get its own messages back through a group; the spec makes it an
                    // error [MQTT-3.8.3-4].
                    return self.violation(reason::PROTOCOL_ERROR, "No Local on a shared subscription", fx);
                }
            }
            let qos = req.qos.min(self.limits.max_qos);
            if !self.authorized(Action::Subscribe, inner, qos, false, fx) {
                if fx.close.is_some() {
                    return;
                }
                // 3.x clients see the one failure code, 0x80.
                reasons.push(reason::NOT_AUTHORIZED);
                why.get_or_insert("not authorized to subscribe to this filter");
                continue;
            }
            let options = SubOptions {
                qos,
                no_local: req.no_local,
                retain_as_published: req.retain_as_published,
                retain_handling: req.retain_handling,
                subscription_id: s.subscription_identifier,
            };
            if session.subscriptions.len() >= self.limits.max_subscriptions
                && !session.subscriptions.contains_key(&req.filter)
            {
                reasons.push(reason::QUOTA_EXCEEDED);
                why.get_or_insert("too many subscriptions for one client");
                continue;
            }
            let is_new = session
                .subscriptions
                .insert(req.filter.clone(), options.clone())
                .is_none();
            let send_retained = shared.is_none()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => is_new,
                    RetainHandling::DoNotSend => false,
                };
            fx.routes.push(RouteChange::Subscribe {
                filter: req.filter,
                options,
                send_retained,
            });
            reasons.push(qos as u8);
        }
        self.send(
            &Packet::SubAck(SubAck {
                pkid: s.pkid,
                reasons,
                reason_string: why.and_then(|w| self.problem(reason::UNSPECIFIED_ERROR, w)),
                ..SubAck::default()
            }),
            fx,
        );
    }

    pub(super) fn unsubscribe_in(&mut self, session: &mut Session, u: Unsubscribe, fx: &mut Effects) {
        let mut reasons = Vec::with_capacity(u.filters.len());
        for filter in u.filters {
            if session.subscriptions.remove(&filter).is_some() {
                reasons.push(reason::SUCCESS);
                fx.routes.push(RouteChange::Unsubscribe { filter });
            } else {
                reasons.push(reason::NO_SUBSCRIPTION_EXISTED);
            }
        }
        self.send(
            &Packet::UnsubAck(UnsubAck {
                pkid: u.pkid,
                reasons,
                ..UnsubAck::default()
            }),
            fx,
        );
    }
}
