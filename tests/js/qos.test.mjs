// MQTT.js against ractmq: PUBLISH/SUBSCRIBE at QoS 0, 1 and 2 with exact counts (every numbered message once,
// in the publisher's order), the acknowledgement flows completing on both sides, and the effective QoS being
// the lower of the publish and the subscription, over TCP and WebSocket with MQTT 3.1.1 and 5.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { eventually, matrix, numbers, publishNumbered, topic, withBroker, within } from './support.mjs';

const N = 50;

/** Options that make a session outlive its connection: clean session 0, and for MQTT 5 an expiry. */
function persistent(version) {
  return version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
}

/**
 * Destroys `tc`'s socket (no DISCONNECT) at chosen points, one per connection: on the i-th connection from now
 * (MQTT.js reconnecting by itself), when the `nth` packet `cmd` is sent or received (`dir`) on that connection.
 * Returns a function that tells how many times MQTT.js has reconnected since.
 */
function breakConnections(tc, plan) {
  let conn = 0;
  let seen = 0;
  const watch = (dir) => (p) => {
    if (p.cmd === 'connack') {
      // Not the 'connect' event: MQTT.js emits that only after sending again what it had stored.
      conn++;
      seen = 0;
      return;
    }
    const step = plan[conn];
    if (step && step.dir === dir && step.cmd === p.cmd && ++seen === step.nth) {
      tc.client.stream.destroy();
    }
  };
  tc.client.on('packetsend', watch('sent'));
  tc.client.on('packetreceive', watch('received'));
  return () => conn;
}

/** Each of `n` messages went through its whole QoS flow, on the publisher's side and the subscriber's. */
function assertFlows(pub, sub, qos, n, version) {
  const count = (c, cmd, dir) => c.packets(cmd, dir).length;
  const flows = {
    'pub sent publish': count(pub, 'publish', 'sent'),
    'pub got puback': count(pub, 'puback'),
    'pub got pubrec': count(pub, 'pubrec'),
    'pub sent pubrel': count(pub, 'pubrel', 'sent'),
    'pub got pubcomp': count(pub, 'pubcomp'),
    'sub got publish': count(sub, 'publish'),
    'sub sent puback': count(sub, 'puback', 'sent'),
    'sub sent pubrec': count(sub, 'pubrec', 'sent'),
    'sub got pubrel': count(sub, 'pubrel'),
    'sub sent pubcomp': count(sub, 'pubcomp', 'sent'),
  };
  const [q1, q2] = [qos === 1 ? n : 0, qos === 2 ? n : 0];
  assert.deepEqual(flows, {
    'pub sent publish': n,
    'pub got puback': q1,
    'pub got pubrec': q2,
    'pub sent pubrel': q2,
    'pub got pubcomp': q2,
    'sub got publish': n,
    'sub sent puback': q1,
    'sub sent pubrec': q2,
    'sub got pubrel': q2,
    'sub sent pubcomp': q2,
  });
  if (version === 5) {
    // Every acknowledgement the broker sent says Success (MQTT.js reads the short form as no reason code).
    const acks = [...pub.packets('puback'), ...pub.packets('pubrec'), ...pub.packets('pubcomp'), ...sub.packets('pubrel')];
    assert.deepEqual(acks.filter((a) => (a.reasonCode ?? 0) !== 0), []);
  }
}

for (const { transport, version, label } of matrix()) {
  for (const qos of [0, 1, 2]) {
    test(`${label}: QoS ${qos}: ${N} messages arrive once each, in order`, (t) =>
      withBroker(t, async (ctx) => {
        const sub = await ctx.client(transport, { protocolVersion: version, clientId: 'sub' });
        const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
        const t1 = topic(`qos${qos}`);
        const granted = await sub.subscribe(t1, { qos });
        assert.deepEqual(granted.map((g) => [g.topic, g.qos]), [[t1, qos]]);

        await publishNumbered(pub, t1, N, qos);
        // A last message after the numbered ones: once it is in, any duplicate would have arrived before it.
        await pub.publish(t1, 'end', { qos });
        await sub.message(t1, 'end');

        const got = sub.on(t1);
        assert.deepEqual(got.map((m) => m.text), [...numbers(N), 'end']);
        assert.deepEqual(got.map((m) => m.packet.qos), Array(N + 1).fill(qos));
        assert.ok(got.every((m) => m.packet.retain === false && m.packet.dup === false), 'no retain or dup flag');
        assertFlows(pub, sub, qos, N + 1, version);
        if (qos > 0) {
          // The subscriber's acknowledgements reached the broker: nothing left in flight towards it.
          await eventually(async () => (await ctx.broker.client('sub')).inflight === 0, 'inflight to sub to drain');
        }
      }));
  }

  test(`${label}: delivery QoS is the lower of the publish QoS and the subscription QoS`, (t) =>
    withBroker(t, async (ctx) => {
      const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
      const base = topic('grade');
      const subs = [];
      for (const subQos of [0, 1, 2]) {
        const c = await ctx.client(transport, { protocolVersion: version, clientId: `sub${subQos}` });
        await c.subscribe(`${base}/+`, { qos: subQos });
        subs.push(c);
      }
      for (const pubQos of [0, 1, 2]) {
        await pub.publish(`${base}/x`, `q${pubQos}`, { qos: pubQos });
      }
      for (const [subQos, c] of subs.entries()) {
        await c.count(`${base}/x`, 3);
        assert.deepEqual(
          c.on(`${base}/x`).map((m) => [m.text, m.packet.qos]),
          [0, 1, 2].map((pubQos) => [`q${pubQos}`, Math.min(pubQos, subQos)]),
          `subscriber at QoS ${subQos}`,
        );
      }
    }));

  test(`${label}: overlapping subscriptions deliver a message once, at the highest QoS`, (t) =>
    withBroker(t, async (ctx) => {
      const sub = await ctx.client(transport, { protocolVersion: version, clientId: 'sub' });
      const base = topic('overlap');
      const t1 = `${base}/a`;
      await sub.subscribe({ [t1]: { qos: 0 }, [`${base}/#`]: { qos: 2 } });
      const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
      await pub.publish(t1, 'one', { qos: 2 });
      await pub.publish(t1, 'end', { qos: 2 });
      await sub.message(t1, 'end');
      assert.deepEqual(sub.on(t1).map((m) => [m.text, m.packet.qos]), [['one', 2], ['end', 2]]);
    }));

  test(`${label}: a 512 KiB payload arrives byte for byte`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('large');
      const sub = await ctx.client(transport, { protocolVersion: version, clientId: 'sub' });
      await sub.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
      const payload = Buffer.alloc(512 * 1024);
      for (let i = 0; i < payload.length; i++) {
        payload[i] = (i * 31 + (i >> 8)) & 0xff;
      }
      await pub.publish(t1, payload, { qos: 1 });
      await pub.publish(t1, 'end', { qos: 1 });
      await sub.message(t1, 'end');
      assert.equal(sub.on(t1).length, 2);
      assert.ok(sub.on(t1)[0].payload.equals(payload), 'the payload is intact');
    }));

  test(`${label}: QoS 2 stays exactly once when the publisher's connection breaks mid-flow`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('qos2-cut');
      const sub = await ctx.client(transport, { protocolVersion: version, clientId: 'sub' });
      await sub.subscribe(t1, { qos: 2 });
      // A persistent publisher that MQTT.js reconnects by itself; on reconnect it sends again what it holds:
      // PUBREL for messages the broker acknowledged with PUBREC, PUBLISH (DUP) for the others.
      const pub = await ctx.client(transport, {
        protocolVersion: version, clientId: 'pub', reconnectPeriod: 100, ...persistent(version),
      });
      // First connection: cut once the 15th PUBLISH is written (most PUBRECs not received). Second: cut when
      // its 5th PUBREC arrives (that PUBREL not sent).
      const reconnects = breakConnections(pub, [
        { dir: 'sent', cmd: 'publish', nth: 15 },
        { dir: 'received', cmd: 'pubrec', nth: 5 },
      ]);
      // MQTT.js's own publishAsync, not pub.publish: these operations are meant to outlive a closed connection.
      const sends = numbers(N).map((i) => pub.client.publishAsync(t1, i, { qos: 2 }));
      await within(Promise.all(sends), 'every QoS 2 publish to complete across the reconnects');
      assert.equal(reconnects(), 2);
      await pub.publish(t1, 'end', { qos: 2 });
      await sub.message(t1, 'end');
      assert.deepEqual(sub.on(t1).map((m) => m.text).sort(), [...numbers(N), 'end'].sort(), 'each message once');
    }));

  test(`${label}: QoS 2 stays exactly once when the subscriber's connection breaks mid-flow`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('qos2-cut-sub');
      const sub = await ctx.client(transport, {
        protocolVersion: version, clientId: 'sub', reconnectPeriod: 100, ...persistent(version),
      });
      await sub.subscribe(t1, { qos: 2 });
      // First connection: cut when the 15th PUBLISH arrives (its PUBREC not sent). Second: cut when its 5th
      // PUBREL arrives (that PUBCOMP not sent). The broker sends both again on resume; MQTT.js must pass each
      // message on once.
      const reconnects = breakConnections(sub, [
        { dir: 'received', cmd: 'publish', nth: 15 },
        { dir: 'received', cmd: 'pubrel', nth: 5 },
      ]);
      const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
      await publishNumbered(pub, t1, N, 2);
      await sub.count(t1, N);
      await pub.publish(t1, 'end', { qos: 2 });
      await sub.message(t1, 'end');
      assert.equal(reconnects(), 2);
      assert.deepEqual(sub.on(t1).map((m) => m.text).sort(), [...numbers(N), 'end'].sort(), 'each message once');
    }));
}
