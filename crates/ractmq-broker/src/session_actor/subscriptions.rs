//! A session's subscriptions in the router's index: applied as the core decides at SUBSCRIBE and UNSUBSCRIBE,
//! removed when the session ends, and a shared group's unacknowledged messages handed on when a member leaves.

use super::*;

/// The index change that removes `client_id`'s subscription to `filter` (as the client sent it).
fn unroute_change(filter: &str, client_id: &Arc<str>) -> Change {
    let (path, key, _) = index_entry(filter, client_id);
    Change {
        filter: path.to_string(),
        key,
        route: None,
    }
}

impl SessionState {
    /// Apply subscription changes to the index; returns the retained messages the new subscriptions get.
    pub(super) async fn apply_routes(&mut self, routes: Vec<RouteChange>) -> Vec<Delivery> {
        if routes.is_empty() {
            return Vec::new();
        }
        let mut changes = Vec::with_capacity(routes.len());
        let mut retained = Vec::new();
        let mut left_groups = Vec::new();
        let events = self.subscription_events(&routes);
        for change in routes {
            match change {
                RouteChange::Subscribe {
                    filter,
                    options,
                    send_retained,
                } => {
                    let (path, key, shared) = index_entry(&filter, &self.shared.client_id);
                    if send_retained {
                        let matching = self.kernel.router.retained_matching(&filter);
                        retained.extend(matching.into_iter().map(|m| Delivery::retained(m, &options)));
                    }
                    changes.push(Change {
                        filter: path.to_string(),
                        key,
                        route: Some(Route {
                            target: Target::Session(self.shared.clone()),
                            options,
                            shared,
                        }),
                    });
                }
                RouteChange::Unsubscribe { filter } => {
                    if parse_shared(&filter).is_some() {
                        left_groups.push(filter.clone());
                    }
                    changes.push(unroute_change(&filter, &self.shared.client_id));
                }
            }
        }
        let new_routes = self.kernel.router.apply_here(changes).await;
        // In this node's index: publishes read after the change may be routed now.
        self.fence = None;
        self.kernel.router.settle(new_routes).await;
        for group in left_groups {
            self.hand_off_shared(Some(&group));
        }
        self.tell_subscription_events(events);
        retained
    }

    /// The subscription changes the hooks want to hear about: (filter, the QoS granted or `None` for an
    /// unsubscribe). Empty, without a copy, when nobody listens.
    fn subscription_events(&self, routes: &[RouteChange]) -> Vec<(String, Option<ractmq_codec::QoS>)> {
        let router = &self.kernel.router;
        let (subs, unsubs) = (
            router.hooks_for(HookKind::SessionSubscribed).is_some(),
            router.hooks_for(HookKind::SessionUnsubscribed).is_some(),
        );
        if !subs && !unsubs {
            return Vec::new();
        }
        (routes.iter())
            .filter_map(|change| match change {
                RouteChange::Subscribe { filter, options, .. } if subs => Some((filter.clone(), Some(options.qos))),
                RouteChange::Unsubscribe { filter } if unsubs => Some((filter.clone(), None)),
                _ => None,
            })
            .collect()
    }

    fn tell_subscription_events(&self, events: Vec<(String, Option<ractmq_codec::QoS>)>) {
        let (false, Some(hooks)) = (events.is_empty(), self.kernel.router.hooks()) else {
            return;
        };
        let conn = self.shared.conn.lock().clone();
        let client = client_ref(&self.shared.client_id, conn.as_ref());
        for (filter, qos) in &events {
            hooks.event(&match qos {
                Some(qos) => ClientEvent::Subscribed {
                    client,
                    filter,
                    qos: *qos,
                },
                None => ClientEvent::Unsubscribed { client, filter },
            });
        }
    }

    pub(super) async fn unroute(&self, filters: Vec<String>) {
        if filters.is_empty() {
            return;
        }
        let changes = filters
            .iter()
            .map(|filter| unroute_change(filter, &self.shared.client_id))
            .collect();
        self.kernel.router.apply(changes).await;
    }

    /// This client leaves shared group `group` (all its groups if `None`): its unacknowledged and queued
    /// messages from the group go to other members, so that none is lost with it. A message whose group has
    /// no other member stays with this session.
    pub(super) fn hand_off_shared(&self, group: Option<&str>) {
        let router = &self.kernel.router;
        let client_id = &self.shared.client_id;
        let in_group = |d: &Delivery| d.shared.as_deref().is_some_and(|g| group.is_none_or(|want| want == g));
        let unacked = self.shared.state.lock().take_shared_unacked(group);
        let queued = self.shared.take_where(in_group);
        let mut kept = Vec::new();
        let mut moved = 0u64;
        for mut delivery in unacked.into_iter().chain(queued) {
            // The member it goes to keeps its own copy; this session's is forgotten once handed on.
            let stored = delivery.stored.take();
            if router.dispatch_shared(&delivery, client_id) {
                moved += 1;
                delivery.stored = stored;
                self.shared.forget_copies([delivery]);
            } else {
                delivery.stored = stored;
                kept.push(delivery);
            }
        }
        Metrics::add(&self.kernel.metrics.shared_handed_off, moved);
        for delivery in kept {
            self.shared.push(delivery, &self.kernel.metrics);
        }
    }
}
