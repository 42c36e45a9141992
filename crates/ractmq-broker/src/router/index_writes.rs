//! Writing the subscription index: changes go to the shard actors that own each partition, then to the other
//! nodes; a restarted shard rebuilds its partition from the session store, the in-process subscribers and the
//! relays kept here.

use super::*;

impl Router {
    /// Apply index changes and wait until each shard has published them: after this returns, a publish sees
    /// the new subscriptions. A shard that is restarting is retried; its rebuild reads the session store, so a
    /// change already recorded there is not lost even if every retry fails.
    ///
    /// In a cluster, when the changes give this node a route it did not have, this also waits (a bounded
    /// time) until the other nodes have it: after a SUBACK, a message published on any node reaches the new
    /// subscription.
    pub async fn apply(&self, changes: Vec<Change>) {
        let new_routes = self.apply_here(changes).await;
        self.settle(new_routes).await;
    }

    /// [`Router::apply`] on this node only: true if the changes gave it a route it did not have, for
    /// [`Router::settle`].
    pub async fn apply_here(&self, changes: Vec<Change>) -> bool {
        let mut by_shard: HashMap<usize, Vec<ShardOp>> = HashMap::new();
        for c in changes {
            let shard = self.shard_of_filter(&c.filter);
            by_shard.entry(shard).or_default().push(ShardOp {
                filter: c.filter,
                key: c.key,
                route: c.route,
            });
        }
        let mut new_routes = false;
        for (shard, ops) in by_shard {
            new_routes |= self.apply_to_shard(shard, ops).await;
        }
        new_routes
    }

    /// After [`Router::apply_here`] gave this node `new_routes`: wait (a bounded time) until the other nodes
    /// have them.
    pub async fn settle(&self, new_routes: bool) {
        if let (true, Some(remote)) = (new_routes, self.remote.get()) {
            remote.settled().await;
        }
    }

    /// True if the shard gained a route (see [`crate::routes`]).
    async fn apply_to_shard(&self, shard: usize, ops: Vec<ShardOp>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        let ops = Arc::new(ops);
        loop {
            let actor = self.shards[shard].actor.read().clone();
            if let Some(actor) = actor {
                let ops = ops.clone();
                let result = ractor::call!(actor, |reply| ShardMsg::Apply(ops, Some(reply)));
                if let Ok(new_routes) = result {
                    return new_routes;
                }
            }
            if Instant::now() > deadline {
                tracing::error!(
                    shard,
                    "topic shard did not come back within 5 s; its rebuild will restore the change"
                );
                return false;
            }
            // The shard is between death and restart: its supervisor registers the new actor shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Apply changes without waiting (used from `Drop`).
    pub fn apply_detached(&self, changes: Vec<Change>) {
        for c in changes {
            let shard = self.shard_of_filter(&c.filter);
            if let Some(actor) = self.shards[shard].actor.read().clone() {
                let op = ShardOp {
                    filter: c.filter,
                    key: c.key,
                    route: c.route,
                };
                let _ = actor.send_message(ShardMsg::Apply(Arc::new(vec![op]), None));
            }
        }
    }

    pub(crate) fn register_local(&self, key: Arc<str>, filter: String, sender: mpsc::Sender<Arc<Message>>) {
        self.local.lock().insert(key, LocalSub { filter, sender });
    }

    pub(crate) fn unregister_local(&self, key: &str) {
        self.local.lock().remove(key);
    }

    /// Every subscription that belongs in `shard`, from the sources of truth: the session store and the
    /// in-process subscriptions. This is how a restarted shard gets its index back.
    pub(crate) fn rebuild_index(&self, shard: usize) -> (Index, LocalRoutes) {
        let mut index = Index::new();
        let mut routes = LocalRoutes::default();
        for session in self.store.all() {
            let state = session.state.lock();
            for (filter, options) in &state.subscriptions {
                let (path, key, shared) = index_entry(filter, &session.client_id);
                if self.shard_of_filter(path) == shard {
                    let route = Route {
                        target: Target::Session(session.clone()),
                        options: options.clone(),
                        shared,
                    };
                    if index.insert(path, key.clone(), route.clone()) {
                        routes.added(path, &key, &route);
                    }
                }
            }
        }
        for (filter, key, route) in self.relays.entries() {
            if self.shard_of_filter(&filter) == shard && index.insert(&filter, key.clone(), route.clone()) {
                routes.added(&filter, &key, &route);
            }
        }
        for (key, sub) in self.local.lock().iter() {
            if self.shard_of_filter(&sub.filter) == shard {
                let route = Route {
                    target: Target::Local(sub.sender.clone()),
                    options: SubOptions {
                        qos: ractmq_codec::QoS::ExactlyOnce,
                        ..SubOptions::default()
                    },
                    shared: None,
                };
                if index.insert(&sub.filter, key.clone(), route.clone()) {
                    routes.added(&sub.filter, key, &route);
                }
            }
        }
        (index, routes)
    }
}
