//! `encode_publish` is the delivery hot path: apart from growing the buffer it must not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use ractmq_codec::{encode_publish, Protocol, PublishOut, PublishProperties, QoS};

struct CountingAlloc;

thread_local! {
    // Only this thread's allocations count: the test harness allocates on other threads meanwhile.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn encode_publish_does_not_allocate_into_a_buffer_with_room() {
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(vec![1, 2, 3].into()),
        user_properties: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        ..PublishProperties::default()
    };
    let ids = [1, 200, 70_000];
    let payload = vec![0x55u8; 1000];
    let publish = PublishOut {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/room-1/temperature",
        pkid: 17,
        payload: &payload,
        properties: Some(&props),
        topic_alias: Some(3),
        subscription_identifiers: &ids,
        message_expiry_interval: Some(60),
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
        let before = allocations();
        let mut total = 0;
        for _ in 0..20 {
            total += encode_publish(&publish, protocol, &mut buf).unwrap();
        }
        assert_eq!(allocations() - before, 0, "{protocol:?}");
        assert_eq!(total, buf.len());
        buf.clear();
    }
}
