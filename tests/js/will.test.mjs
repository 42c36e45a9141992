// MQTT.js against ractmq: wills. Sent once when a client vanishes without DISCONNECT, never after a normal
// DISCONNECT, sent after an MQTT 5 DISCONNECT 0x04, carrying its MQTT 5 properties, held back by a Will
// Delay Interval; over TCP and WebSocket with MQTT 3.1.1 and 5. Absence is proved by a marker message
// published once the broker is done with the connection: a will would have arrived before it.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { eventually, matrix, topic, withBroker } from './support.mjs';

/** Waits until the broker no longer has `clientId` connected (its session gone, or kept disconnected). */
async function brokerDoneWith(ctx, clientId) {
  await eventually(async () => {
    const c = await ctx.broker.client(clientId);
    return c === null || c.connected === false;
  }, `the broker to finish with ${clientId}`);
}

/** Publishes a marker ("marker 1", "marker 2", ...) on `t` from `via` and waits for `watcher` to get it. */
let markers = 0;
async function marker(via, watcher, t) {
  const text = `marker ${++markers}`;
  await via.publish(t, text, { qos: 1 });
  await watcher.message(t, text);
  return text;
}

for (const { transport, version, label } of matrix()) {
  const will = (t, extra = {}) => ({ topic: t, payload: Buffer.from('gone'), qos: 1, retain: false, ...extra });

  test(`${label}: a client closed without DISCONNECT has its will sent, once`, (t) =>
    withBroker(t, async (ctx) => {
      const wt = topic('will');
      const watcher = await ctx.client(transport, { protocolVersion: version, clientId: 'watcher' });
      await watcher.subscribe(wt, { qos: 2 });
      const dying = await ctx.client(transport, { protocolVersion: version, clientId: 'dying', will: will(wt) });
      await dying.kill();

      const got = await watcher.message(wt, 'gone');
      assert.equal(got.packet.qos, 1);
      assert.equal(got.packet.retain, false);
      await brokerDoneWith(ctx, 'dying');
      const m = await marker(watcher, watcher, wt);
      assert.deepEqual(watcher.on(wt).map((x) => x.text), ['gone', m]);
    }));

  test(`${label}: a normal DISCONNECT sends no will`, (t) =>
    withBroker(t, async (ctx) => {
      const wt = topic('will');
      const watcher = await ctx.client(transport, { protocolVersion: version, clientId: 'watcher' });
      await watcher.subscribe(wt, { qos: 2 });
      const leaving = await ctx.client(transport, { protocolVersion: version, clientId: 'leaving', will: will(wt) });
      await leaving.end();
      await brokerDoneWith(ctx, 'leaving');
      const m = await marker(watcher, watcher, wt);
      assert.deepEqual(watcher.on(wt).map((x) => x.text), [m]);
    }));

  test(`${label}: a retained will reaches a later subscriber`, (t) =>
    withBroker(t, async (ctx) => {
      const wt = topic('will');
      const dying = await ctx.client(transport, {
        protocolVersion: version, clientId: 'dying', will: will(wt, { retain: true }),
      });
      await dying.kill();
      await eventually(async () => (await ctx.broker.retained(wt)) !== null, 'the will to be retained');
      const late = await ctx.client(transport, { protocolVersion: version, clientId: 'late' });
      await late.subscribe(wt, { qos: 1 });
      const got = await late.message(wt, 'gone');
      assert.equal(got.packet.retain, true);
    }));
}

for (const transport of ['tcp', 'ws']) {
  const label = `${transport} v5`;

  test(`${label}: DISCONNECT with reason 0x04 sends the will`, (t) =>
    withBroker(t, async (ctx) => {
      const wt = topic('will');
      const watcher = await ctx.client(transport, { protocolVersion: 5, clientId: 'watcher' });
      await watcher.subscribe(wt, { qos: 1 });
      const leaving = await ctx.client(transport, {
        protocolVersion: 5, clientId: 'leaving', will: { topic: wt, payload: Buffer.from('asked for'), qos: 1 },
      });
      await leaving.end({ reasonCode: 0x04 });
      await watcher.message(wt, 'asked for');
      await brokerDoneWith(ctx, 'leaving');
      const m = await marker(watcher, watcher, wt);
      assert.deepEqual(watcher.on(wt).map((x) => x.text), ['asked for', m]);
    }));

  test(`${label}: the will carries its properties`, (t) =>
    withBroker(t, async (ctx) => {
      const wt = topic('will');
      const watcher = await ctx.client(transport, { protocolVersion: 5, clientId: 'watcher' });
      await watcher.subscribe(wt, { qos: 1 });
      const dying = await ctx.client(transport, {
        protocolVersion: 5,
        clientId: 'dying',
        will: {
          topic: wt,
          payload: Buffer.from('{"state":"offline"}'),
          qos: 1,
          properties: {
            contentType: 'application/json',
            payloadFormatIndicator: true,
            responseTopic: 'status/replies',
            correlationData: Buffer.from([0, 1, 2, 255]),
            messageExpiryInterval: 3600,
            userProperties: { device: 'd-17', tag: ['a', 'b'] },
          },
        },
      });
      await dying.kill();
      const got = await watcher.message(wt, '{"state":"offline"}');
      const p = got.packet.properties;
      assert.equal(p.contentType, 'application/json');
      assert.equal(p.payloadFormatIndicator, true);
      assert.equal(p.responseTopic, 'status/replies');
      assert.deepEqual([...p.correlationData], [0, 1, 2, 255]);
      assert.ok(p.messageExpiryInterval > 0 && p.messageExpiryInterval <= 3600, `expiry ${p.messageExpiryInterval}`);
      assert.deepEqual({ ...p.userProperties }, { device: 'd-17', tag: ['a', 'b'] });
    }));

  test(`${label}: a delayed will is not sent when the client comes back in time`, (t) =>
    withBroker(t, async (ctx) => {
      const wt = topic('will');
      const watcher = await ctx.client(transport, { protocolVersion: 5, clientId: 'watcher' });
      await watcher.subscribe(wt, { qos: 1 });
      const opts = {
        protocolVersion: 5,
        clientId: 'flaky',
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
        will: { topic: wt, payload: Buffer.from('gone'), qos: 1, properties: { willDelayInterval: 3600 } },
      };
      const first = await ctx.client(transport, opts);
      await first.kill();
      await brokerDoneWith(ctx, 'flaky');
      const m1 = await marker(watcher, watcher, wt);
      const back = await ctx.connect(transport, opts);
      assert.equal(back.connack.sessionPresent, true);
      await back.client.end();
      await brokerDoneWith(ctx, 'flaky');
      const m2 = await marker(watcher, watcher, wt);
      assert.deepEqual(watcher.on(wt).map((x) => x.text), [m1, m2], 'no will');
    }));

  test(`${label}: a delayed will is sent when the session ends first`, (t) =>
    withBroker(t, async (ctx) => {
      const wt = topic('will');
      const watcher = await ctx.client(transport, { protocolVersion: 5, clientId: 'watcher' });
      await watcher.subscribe(wt, { qos: 1 });
      // Session Expiry 0: the session ends with the connection, before the hour of Will Delay.
      const dying = await ctx.client(transport, {
        protocolVersion: 5,
        clientId: 'dying',
        will: { topic: wt, payload: Buffer.from('gone'), qos: 1, properties: { willDelayInterval: 3600 } },
      });
      await dying.kill();
      await watcher.message(wt, 'gone');
    }));
}
