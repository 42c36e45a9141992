// MQTT.js against ractmq: persistent sessions. The offline queue (QoS 1 and 2 messages published while a
// persistent subscriber is away reach it on reconnect, once each, in order), redelivery of unacknowledged
// messages with DUP, and MQTT 5 session and message expiry; over TCP and WebSocket with MQTT 3.1.1 and 5.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TRANSPORTS, eventually, matrix, numbers, pass, publishNumbered, topic, withBroker } from './support.mjs';

const N = 20;

function persistent(version, clientId) {
  return version === 5
    ? { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
    : { protocolVersion: 4, clientId, clean: false };
}

/** Waits until the broker shows `clientId` as a disconnected session, optionally with `queued` messages. */
async function offline(ctx, clientId, queued) {
  await eventually(async () => {
    const c = await ctx.broker.client(clientId);
    return c && !c.connected && (queued === undefined || c.queued === queued);
  }, `${clientId} to be an offline session${queued === undefined ? '' : ` with ${queued} queued`}`);
}

for (const { transport, version, label } of matrix()) {
  for (const qos of [1, 2]) {
    test(`${label}: QoS ${qos} messages published while a persistent session is away arrive on reconnect, once`, (t) =>
      withBroker(t, async (ctx) => {
        const t1 = topic('offline');
        const away = await ctx.client(transport, persistent(version, 'away'));
        await away.subscribe(t1, { qos });
        await away.end();
        await offline(ctx, 'away');

        const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
        await publishNumbered(pub, t1, N, qos);
        await offline(ctx, 'away', N);

        const { client: back, connack } = await ctx.connect(transport, persistent(version, 'away'));
        assert.equal(connack.sessionPresent, true);
        await back.count(t1, N);
        // Published after the reconnect, so it comes after every queued message and any repeat of one.
        await pub.publish(t1, 'end', { qos });
        await back.message(t1, 'end');
        assert.deepEqual(back.on(t1).map((m) => m.text), [...numbers(N), 'end']);
        assert.deepEqual(back.on(t1).map((m) => m.packet.qos), Array(N + 1).fill(qos));
        await eventually(async () => {
          const c = await ctx.broker.client('away');
          return c.queued === 0 && c.inflight === 0;
        }, 'the queue and inflight window to empty');
      }));
  }

  test(`${label}: unacknowledged QoS 1 messages are sent again with DUP when the session resumes`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('redeliver');
      const first = await ctx.client(transport, persistent(version, 'slow'));
      // MQTT.js sends PUBACK once handleMessage calls back: never, here. It reads nothing after that message.
      first.client.handleMessage = () => {};
      await first.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
      await publishNumbered(pub, t1, 5, 1);
      await first.message(t1, '0');
      await eventually(async () => (await ctx.broker.client('slow')).inflight === 5, 'five messages in flight');
      assert.equal(first.packets('puback', 'sent').length, 0);
      await first.kill();
      await offline(ctx, 'slow');

      const back = await ctx.client(transport, persistent(version, 'slow'));
      await back.count(t1, 5);
      await pub.publish(t1, 'end', { qos: 1 });
      await back.message(t1, 'end');
      assert.deepEqual(back.on(t1).map((m) => m.text), [...numbers(5), 'end']);
      // Each of the five had been sent before, so each comes again with DUP set; the new one without.
      assert.deepEqual(back.on(t1).map((m) => m.packet.dup), [...Array(5).fill(true), false]);
    }));
}

for (const transport of TRANSPORTS) {
  const label = `${transport} v5`;

  test(`${label}: DISCONNECT can end a session by setting its expiry to 0`, (t) =>
    withBroker(t, async (ctx) => {
      const opts = persistent(5, 'shortlived');
      const first = await ctx.client(transport, opts);
      await first.end({ properties: { sessionExpiryInterval: 0 } });
      await eventually(async () => (await ctx.broker.client('shortlived')) === null, 'the session to end');
      const again = await ctx.connect(transport, opts);
      assert.equal(again.connack.sessionPresent, false);
    }));

  test(`${label}: a session with expiry 0 is not kept even with clean start off`, (t) =>
    withBroker(t, async (ctx) => {
      const opts = { protocolVersion: 5, clientId: 'nokeep', clean: false };
      const first = await ctx.connect(transport, opts);
      assert.equal(first.connack.sessionPresent, false);
      await first.client.end();
      await eventually(async () => (await ctx.broker.client('nokeep')) === null, 'the session to end');
      const again = await ctx.connect(transport, opts);
      assert.equal(again.connack.sessionPresent, false);
    }));

  test(`${label}: a session is gone once its expiry interval has passed`, (t) =>
    withBroker(t, async (ctx) => {
      const opts = { protocolVersion: 5, clientId: 'expiring', clean: false, properties: { sessionExpiryInterval: 1 } };
      const first = await ctx.client(transport, opts);
      await first.end();
      await offline(ctx, 'expiring');
      // The broker ends the session by itself after one second (MQTT 5 §3.1.2.11.2).
      await eventually(async () => (await ctx.broker.client('expiring')) === null, 'the session to expire');
      const again = await ctx.connect(transport, opts);
      assert.equal(again.connack.sessionPresent, false);
    }));

  test(`${label}: a queued message whose expiry passes is not delivered, the others are`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('stale');
      const away = await ctx.client(transport, persistent(5, 'away'));
      await away.subscribe(t1, { qos: 1 });
      await away.end();
      await offline(ctx, 'away');
      const pub = await ctx.client(transport, { protocolVersion: 5, clientId: 'pub' });
      await pub.publish(t1, 'stale', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.publish(t1, 'fresh', { qos: 1, properties: { messageExpiryInterval: 3600 } });
      await offline(ctx, 'away', 2);
      await pass(2100); // the one second of the first message's expiry, with a margin for whole-second rounding
      const back = await ctx.client(transport, persistent(5, 'away'));
      const fresh = await back.message(t1, 'fresh');
      // Same publisher, same queue: had the stale message been delivered it would have come first.
      assert.deepEqual(back.on(t1).map((m) => m.text), ['fresh']);
      const left = fresh.packet.properties.messageExpiryInterval;
      assert.ok(left > 0 && left < 3600, `the expiry is passed on, counted down: ${left}`);
    }));
}
