//! Dead-lettering what subscribers' full queues drop (`BrokerConfig::dead_letter_dropped`): each session
//! hands what its overflow policy dropped to a bounded queue (never waiting: past 10,000 letters waiting, a
//! letter is lost, as the drop it reports was), and one task publishes each on `$dlq/$queue/{client}/{topic}`
//! as the broker, so that an operator (or a bridge) can subscribe and keep or replay them.

use std::sync::Arc;

use crate::kernel::Kernel;
use crate::view::BrokerView;
use ractmq_codec::QoS;
use ractmq_protocol::Message;

/// Letters waiting to be published.
const WAITING: usize = 10_000;

/// Start dead-lettering: every session stored from now on hands over what it drops.
pub(crate) fn start(kernel: &Arc<Kernel>) {
    let (letters, mut waiting) = tokio::sync::mpsc::channel::<(Arc<str>, Arc<Message>)>(WAITING);
    kernel.store.dead_letter_drops(letters);
    let view = BrokerView::new(kernel.clone());
    tokio::spawn(async move {
        while let Some((client, dropped)) = waiting.recv().await {
            let topic = format!("$dlq/$queue/{client}/{}", dropped.topic);
            let mut letter = Message::new(topic, dropped.payload.clone(), QoS::AtLeastOnce, false);
            letter.properties = dropped.properties.clone();
            let reason = format!("dropped from the full queue of {client}");
            letter.properties.user_properties.push(("reason".into(), reason));
            view.publish(letter).await;
        }
    });
}
