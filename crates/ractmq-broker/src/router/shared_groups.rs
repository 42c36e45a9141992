//! Shared subscriptions: one member of each group gets each message, chosen here or on another node, and a
//! member's messages go to another member of its group when it leaves.

use super::*;

impl Router {
    /// One delivery per shared group among `local` (members here that match the message) and `remote`
    /// (members on other nodes): a member here is given the message, one elsewhere is added to `forwards`.
    /// Returns the deliveries made here.
    pub(super) fn deliver_shared(
        &self,
        message: &Arc<Message>,
        mut local: Vec<(&Arc<str>, &Route)>,
        remote: &[RemoteMember],
        forwards: &mut Vec<Forward>,
        congestion: &mut Congestion,
    ) -> usize {
        local.sort_unstable_by(|a, b| (&a.1.shared, a.0).cmp(&(&b.1.shared, b.0)));
        let mut remote: Vec<&RemoteMember> = remote.iter().collect();
        remote.sort_unstable_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
        let mut groups: Vec<&Arc<str>> = local
            .iter()
            .filter_map(|(_, r)| r.shared.as_ref())
            .chain(remote.iter().map(|m| &m.group))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let mut delivered = 0;
        for group in groups {
            let here: Vec<(&Arc<str>, &Route)> = local
                .iter()
                .copied()
                .filter(|(_, r)| r.shared.as_ref() == Some(group))
                .collect();
            let there: Vec<&RemoteMember> = remote.iter().copied().filter(|m| &m.group == group).collect();
            match self.choose_member(group, &here, &there, message) {
                Chosen::Here(route) => {
                    self.push_shared(group, route, message, congestion);
                    delivered += 1;
                }
                Chosen::There(member) => match forwards.iter_mut().find(|f| f.node == member.node) {
                    Some(forward) => forward.shared.push((group.clone(), member.member.clone())),
                    None => forwards.push(Forward {
                        node: member.node.clone(),
                        deliver: false,
                        shared: vec![(group.clone(), member.member.clone())],
                        relay_to: None,
                    }),
                },
            }
        }
        delivered
    }

    /// The member of `group` that gets `message`, by the group's strategy. Members connected here are preferred
    /// to disconnected ones; members on other nodes count as connected (their node decides, see
    /// [`Router::deliver_to_member`]). `here` and `there` must not both be empty.
    fn choose_member<'a>(
        &self,
        group: &Arc<str>,
        here: &[(&'a Arc<str>, &'a Route)],
        there: &[&'a RemoteMember],
        message: &Arc<Message>,
    ) -> Chosen<'a> {
        let online: Vec<(&Arc<str>, &Route)> = here.iter().copied().filter(|(_, r)| r.is_online()).collect();
        let here = if online.is_empty() && there.is_empty() {
            here.to_vec()
        } else {
            online
        };
        let keys: Vec<&Arc<str>> = here
            .iter()
            .map(|(k, _)| *k)
            .chain(there.iter().map(|m| &m.key))
            .collect();
        let i = self.shared.choose(group, &keys, message);
        match here.get(i) {
            Some((_, route)) => Chosen::Here(route),
            None => Chosen::There(there[i - here.len()]),
        }
    }

    fn push_shared(&self, group: &Arc<str>, route: &Route, message: &Arc<Message>, congestion: &mut Congestion) {
        match &route.target {
            Target::Session(session) => {
                let delivery = Delivery {
                    message: message.clone(),
                    qos: route.options.qos.min(message.qos),
                    retain: message.retain && route.options.retain_as_published,
                    subscription_ids: route.options.subscription_id.into_iter().collect(),
                    shared: Some(group.clone()),
                    stored: None,
                };
                match session.push(delivery, &self.metrics) {
                    Pushed::Queued => {}
                    Pushed::Full if message.publisher.as_ref() == Some(&session.client_id) => {}
                    Pushed::Full => congestion.add(session.clone()),
                    // The member packed up and moved a moment ago, its membership with it: its share follows it.
                    Pushed::Moved(node) => {
                        let member = member_key(group, &session.client_id);
                        let members = vec![(group.clone(), member)];
                        self.relay_shared(message, &node, &session.client_id, members, congestion);
                    }
                }
            }
            Target::Local(sender) => {
                if sender.try_send(message.clone()).is_err() {
                    Metrics::add(&self.metrics.dropped_local_subscriber, 1);
                }
            }
            // Relays are never members of shared groups.
            Target::Relay { .. } => {}
        }
    }

    /// Give `message` to `member` of `group`, chosen by the node it was published on; if that member has gone
    /// meanwhile, to another member of the group here. False if the group has no member here.
    pub(super) fn deliver_to_member(
        &self,
        group: &Arc<str>,
        member: &Arc<str>,
        message: &Arc<Message>,
        congestion: &mut Congestion,
    ) -> bool {
        let Some(Ok(parts)) = parse_shared(group) else {
            return false;
        };
        let snapshot = self.shards[self.shard_of_filter(parts.filter)].snapshot.load();
        if let Some(route) = snapshot
            .get(parts.filter, member)
            .filter(|r| r.shared.as_ref() == Some(group))
        {
            self.push_shared(group, route, message, congestion);
            return true;
        }
        // The member moved to another node a moment ago, its membership with it: its share follows it.
        let client = member.split_once('\0').map(|(_, client)| client);
        if let Some((client, node)) = client.and_then(|c| self.relays.node_of(c).map(|n| (c, n))) {
            let members = vec![(group.clone(), member.clone())];
            self.relay_shared(message, &node, &client.into(), members, congestion);
            return true;
        }
        self.dispatch_in_group(group, parts.filter, &snapshot, None, message, congestion)
    }

    /// A member of `delivery`'s shared group is leaving (`leaving` is its client id) without having
    /// acknowledged it: give the message to another member here. False if the group has no other member here.
    pub fn dispatch_shared(&self, delivery: &Delivery, leaving: &str) -> bool {
        let Some(group) = &delivery.shared else {
            return false;
        };
        let Some(Ok(parts)) = parse_shared(group) else {
            return false;
        };
        let snapshot = self.shards[self.shard_of_filter(parts.filter)].snapshot.load();
        let mut congestion = Congestion::default();
        self.dispatch_in_group(
            group,
            parts.filter,
            &snapshot,
            Some(leaving),
            &delivery.message,
            &mut congestion,
        )
    }

    fn dispatch_in_group(
        &self,
        group: &Arc<str>,
        path: &str,
        snapshot: &Index,
        leaving: Option<&str>,
        message: &Arc<Message>,
        congestion: &mut Congestion,
    ) -> bool {
        let mut members = Vec::new();
        snapshot.for_each_at(path, |k, r| {
            if r.shared.as_ref() == Some(group) && !leaving.is_some_and(|c| r.is_client(c)) {
                members.push((k, r));
            }
        });
        if members.is_empty() {
            return false;
        }
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if let Chosen::Here(route) = self.choose_member(group, &members, &[], message) {
            self.push_shared(group, route, message, congestion);
        }
        true
    }
}

/// Where a shared group's message goes.
enum Chosen<'a> {
    Here(&'a Route),
    There(&'a RemoteMember),
}
