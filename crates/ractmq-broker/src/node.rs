//! The kernel as the cluster layer sees it: the one implementation of [`Node`], kept apart so that the hook's
//! definition (which configuration names) does not depend on the kernel.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::cluster_hook::{Node, StateWrite};
use crate::handover::hand_over;
use crate::kernel::Kernel;
use crate::metrics::Metrics;
use crate::remote_sessions::{RemoteSessions, SessionHandover};
use crate::router::Router;
use crate::sys::publish_brokers;

impl Node for Kernel {
    fn router(&self) -> &Arc<Router> {
        &self.router
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn mqtt_addr(&self) -> Option<SocketAddr> {
        *self.mqtt_addr.lock()
    }

    fn report_start_failure(&self, line: String) {
        Kernel::report_start_failure(self, line);
    }

    fn set_remote_sessions(&self, remote: Arc<dyn RemoteSessions>) {
        Kernel::set_remote_sessions(self, remote);
    }

    fn hand_over<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
        to: Arc<str>,
    ) -> Pin<Box<dyn Future<Output = Option<SessionHandover>> + Send + 'a>> {
        Box::pin(hand_over(self, client_id, clean_start, to))
    }

    fn publish_brokers(&self) {
        publish_brokers(self);
    }

    fn stored_state(&self, space: &str) -> Vec<(String, Vec<u8>)> {
        crate::view::stored_state(self, space)
    }

    fn keep_state(&self, space: &'static str, key: &str, value: Option<Vec<u8>>) -> StateWrite {
        Box::pin(crate::view::keep_state(self, space, key, value))
    }
}
