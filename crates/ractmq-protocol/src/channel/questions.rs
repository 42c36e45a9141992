//! What a batch of packets will ask the authorizer, listed before the channel handles it.
//!
//! The channel asks its [`Authorizer`] synchronously. An authorizer whose answers come from a service (EMQX's
//! HTTP authorizer) cannot be asked that way, so the broker lists a batch's questions here first, fetches
//! what its cache lacks, and only then hands the batch over. The list mirrors the checks of `publish_in` and
//! `subscribe_in` that come before authorization, next to them, so that the two agree: every question the
//! channel asks is listed (a few listed ones may go unasked, e.g. a QoS 2 PUBLISH sent again before PUBREL,
//! or a packet after one that closes the connection).

use super::*;
use crate::authz::Question;

impl Channel {
    /// The questions handling `packets`, in order, puts to the authorizer: a PUBLISH's topic (through its
    /// topic alias, set earlier or in the same batch), every filter of a SUBSCRIBE that passes the spec's and
    /// the broker's checks. Never `$SYS` publishes, which are refused without asking. Repeats are not removed.
    pub fn authz_questions<'a>(&'a self, packets: &'a [Packet], mut ask: impl FnMut(Question<'a>)) {
        // Aliases set by PUBLISHes of this batch, which the channel will have learnt by the time it reads the
        // PUBLISHes that use them.
        let mut aliases: Vec<(u16, &'a str)> = Vec::new();
        for packet in packets {
            match packet {
                Packet::Publish(p) => {
                    if p.qos > self.limits.max_qos || (p.retain && !self.limits.retain_available) {
                        continue;
                    }
                    let topic: &str = match p.properties.topic_alias {
                        None => &p.topic,
                        Some(alias) if alias == 0 || alias > self.limits.topic_alias_maximum => continue,
                        Some(alias) if !p.topic.is_empty() => {
                            aliases.retain(|(a, _)| *a != alias);
                            aliases.push((alias, &p.topic));
                            &p.topic
                        }
                        Some(alias) => match aliases.iter().rev().find(|(a, _)| *a == alias) {
                            Some(&(_, topic)) => topic,
                            None => match self.inbound_aliases.get(&alias) {
                                Some(topic) => topic,
                                None => continue,
                            },
                        },
                    };
                    if is_sys_topic(topic) {
                        continue;
                    }
                    ask(Question {
                        action: Action::Publish,
                        topic,
                        qos: p.qos,
                        retain: p.retain,
                    });
                }
                Packet::Subscribe(s) => {
                    if s.subscription_identifier.is_some() && !self.limits.subscription_identifiers {
                        continue;
                    }
                    for req in &s.filters {
                        let inner = match parse_shared(&req.filter) {
                            None => req.filter.as_str(),
                            Some(Ok(shared)) if self.limits.shared_subscriptions && !req.no_local => shared.filter,
                            Some(_) => continue,
                        };
                        if !topic::valid_filter(inner)
                            || (!self.limits.wildcard_subscriptions && crate::topic::has_wildcard(inner))
                        {
                            continue;
                        }
                        ask(Question {
                            action: Action::Subscribe,
                            topic: inner,
                            qos: req.qos.min(self.limits.max_qos),
                            retain: false,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}
