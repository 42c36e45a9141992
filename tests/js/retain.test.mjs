// MQTT.js against ractmq: retained messages reach later subscribers with the retain flag, are replaced by
// the next retained message and cleared by an empty one, over TCP and WebSocket with MQTT 3.1.1 and 5.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { matrix, topic, withBroker } from './support.mjs';

for (const { transport, version, label } of matrix()) {
  const opts = (clientId) => ({ protocolVersion: version, clientId });

  test(`${label}: a retained message reaches a later subscriber with the retain flag`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('retained');
      const early = await ctx.client(transport, opts('early'));
      await early.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, opts('pub'));
      await pub.publish(t1, 'kept', { qos: 1, retain: true });
      // A subscriber that was already there gets it as a live message: retain flag clear.
      const live = await early.message(t1, 'kept');
      assert.equal(live.packet.retain, false);

      const late = await ctx.client(transport, opts('late'));
      await late.subscribe(t1, { qos: 1 });
      const got = await late.message(t1, 'kept');
      assert.equal(got.packet.retain, true);
      assert.equal(got.packet.qos, 1);
      // Once, and nothing else: a live message published after it arrives after it.
      await pub.publish(t1, 'marker', { qos: 1 });
      await late.message(t1, 'marker');
      assert.deepEqual(late.on(t1).map((m) => [m.text, m.packet.retain]), [['kept', true], ['marker', false]]);
    }));

  test(`${label}: a retained message is replaced by the next, cleared by an empty payload`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('replace');
      const pub = await ctx.client(transport, opts('pub'));
      await pub.publish(t1, 'first', { qos: 1, retain: true });
      await pub.publish(t1, 'second', { qos: 1, retain: true });

      const a = await ctx.client(transport, opts('a'));
      await a.subscribe(t1, { qos: 1 });
      await a.message(t1, 'second');
      await pub.publish(t1, 'marker', { qos: 1 });
      await a.message(t1, 'marker');
      assert.deepEqual(a.on(t1).map((m) => m.text), ['second', 'marker'], 'only the latest retained message');
      assert.equal((await ctx.broker.retained(t1))?.payload, 'second');

      // An empty retained payload clears the topic; it is delivered to current subscribers as usual.
      await pub.publish(t1, '', { qos: 1, retain: true });
      await a.until((c) => c.on(t1).length === 3, 'the empty message');
      assert.equal(a.on(t1)[2].payload.length, 0);
      assert.equal(await ctx.broker.retained(t1), null, 'the broker keeps nothing for the topic');

      const b = await ctx.client(transport, opts('b'));
      await b.subscribe(t1, { qos: 1 });
      // Retained messages are sent at SUBSCRIBE, before anything published after the SUBACK.
      await pub.publish(t1, 'after clear', { qos: 1 });
      await b.message(t1, 'after clear');
      assert.deepEqual(b.on(t1).map((m) => m.text), ['after clear'], 'no retained message after the clear');
    }));

  test(`${label}: a wildcard subscription gets every retained topic it matches, once`, (t) =>
    withBroker(t, async (ctx) => {
      const base = topic('many');
      const pub = await ctx.client(transport, opts('pub'));
      for (const leaf of ['a', 'b/c', 'd']) {
        await pub.publish(`${base}/${leaf}`, `value ${leaf}`, { qos: 1, retain: true });
      }
      await pub.publish(`${base}-other`, 'not matched', { qos: 1, retain: true });
      const sub = await ctx.client(transport, opts('sub'));
      await sub.subscribe(`${base}/#`, { qos: 2 });
      await sub.until((c) => c.messages.length >= 3, 'three retained messages');
      await pub.publish(`${base}/marker`, 'marker', { qos: 1 });
      await sub.message(`${base}/marker`, 'marker');
      const retained = sub.messages.filter((m) => m.packet.retain);
      assert.deepEqual(
        retained.map((m) => [m.topic, m.text, m.packet.qos]).sort(),
        [[`${base}/a`, 'value a', 1], [`${base}/b/c`, 'value b/c', 1], [`${base}/d`, 'value d', 1]],
      );
      assert.equal(sub.messages.length, 4);
    }));
}
