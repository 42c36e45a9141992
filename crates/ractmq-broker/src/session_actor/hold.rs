//! Holding a client as a publisher: while queues it fills have no room, while subscription changes read
//! before its packets are not in the index yet (see `flow.rs`, `fence.rs`), or while the HTTP authorization
//! service is asked what a batch needs (see `LiveAcl::fetch_missing`), its acknowledgements and the batches its
//! reader reads wait here, in order.

use super::*;

/// A publisher held: its acknowledgements and what its reader read since wait here, and the reader stops once
/// its permits are all held, so the client's socket is not read meanwhile. The actor itself goes on serving the
/// client as a subscriber, so that a client held by its own subscribers' queues is never stuck behind its own.
pub(super) struct Hold {
    pub(super) generation: u64,
    /// Packets for the client that came with the held publishes (PUBACK, PUBREC...), in order.
    pub(super) out: BytesMut,
    /// The permit of the batch that filled the queues.
    pub(super) permit: Option<Permit>,
    /// Batches read since, in order; each keeps its fence only while the hold waits for older subscription
    /// changes (a client held by full queues does not make everyone else wait for its subscriptions).
    pub(super) deferred: VecDeque<Batch>,
    /// Held for older subscription changes (not by full queues): the batches keep their own.
    pub(super) keeps_fences: bool,
    /// Held for the HTTP authorization service: the end of the socket waits for the batches read before it
    /// (a client that publishes and disconnects at once is not cut short by the service's latency).
    pub(super) defers_close: bool,
    /// The reader's end (and its decode error, if any), to act on once the batches before it are handled.
    pub(super) closed: Option<Option<DecodeError>>,
    /// Waits for room (or for older subscription changes), then sends `Resume`; aborted with the hold.
    pub(super) _waiter: AbortOnDrop,
}

impl Hold {
    pub(super) fn defer(&mut self, mut batch: Batch) {
        if !self.keeps_fences {
            batch.fence = None;
        }
        self.deferred.push_back(batch);
    }
}

impl SessionState {
    /// Handle a batch once every subscription change read before it is in the index; until then the session
    /// is held (see `fence.rs`).
    pub(super) async fn inbound_in_order(&mut self, myself: &ActorRef<SessionMsg>, batch: Batch) {
        if !self.kernel.fences.clear_before(batch.mark) {
            let (fences, mark) = (self.kernel.fences.clone(), batch.mark);
            self.hold_until(async move { fences.wait_before(mark).await }, BytesMut::new(), true);
            if let Some(hold) = self.hold.as_mut() {
                hold.defer(batch);
            }
            return;
        }
        if let Some(fetch) = self.authz_fetch(&batch.packets) {
            // Nobody else waits for this batch's subscription changes meanwhile: the service may be slow.
            self.hold_until(fetch, BytesMut::new(), false);
            if let Some(hold) = self.hold.as_mut() {
                hold.defers_close = true;
                hold.defer(batch);
            }
            return;
        }
        let Batch {
            packets, permit, fence, ..
        } = batch;
        self.fence = fence;
        self.inbound(myself, packets, permit).await;
        // Dropped by `apply_routes` already, unless the batch changed nothing.
        self.fence = None;
    }

    /// When the client's authorizer asks an HTTP service: what the channel will ask about `packets` that the
    /// client's answers lack, fetched by the returned future. Without such a service, one test of an `Option`.
    fn authz_fetch(&self, packets: &[Packet]) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let online = self.online.as_ref()?;
        let http = online.http_authz.as_ref()?;
        let mut questions = Vec::new();
        online.channel.authz_questions(packets, |q| questions.push(q));
        http.fetch_missing(&questions)
    }

    /// What held this client is over: send what waited, then handle the batches read meanwhile, unless one of
    /// them is held again.
    pub(super) async fn resume(&mut self, myself: &ActorRef<SessionMsg>) {
        let Some(mut hold) = self.hold.take() else {
            return;
        };
        self.send_out(&mut hold.out, None);
        drop(hold.permit.take());
        while let Some(batch) = hold.deferred.pop_front() {
            self.inbound_in_order(myself, batch).await;
            if let Some(new_hold) = self.hold.as_mut() {
                hold.deferred.drain(..).for_each(|batch| new_hold.defer(batch));
                if hold.closed.is_some() {
                    new_hold.closed = hold.closed.take();
                }
                return;
            }
        }
        if let Some(error) = hold.closed.take() {
            if self.is_current(hold.generation) {
                Box::pin(self.reader_closed(myself, error)).await;
            }
        }
    }

    /// Hold this client as a publisher until `congestion` clears; `out` waits with it. Its subscription
    /// changes read meanwhile take effect when the hold ends, and nobody else waits for them.
    pub(super) fn hold(&mut self, congestion: Congestion, out: &mut BytesMut) {
        Metrics::add(&self.kernel.metrics.publishers_held, 1);
        self.hold_until(congestion.wait(), std::mem::take(out), false);
    }

    /// Hold this client until `over` completes; `out` waits with it.
    pub(super) fn hold_until(
        &mut self,
        over: impl std::future::Future<Output = ()> + Send + 'static,
        out: BytesMut,
        keeps_fences: bool,
    ) {
        let shared = self.shared.clone();
        let generation = self.generation;
        let waiter = tokio::spawn(async move {
            over.await;
            shared.send(SessionMsg::Resume { generation });
        });
        self.hold = Some(Hold {
            generation,
            out,
            permit: None,
            deferred: VecDeque::new(),
            keeps_fences,
            defers_close: false,
            closed: None,
            _waiter: AbortOnDrop::new(waiter),
        });
    }
}
