// MQTT.js against ractmq: MQTT 5 properties and subscription options end to end (user properties, content
// type, payload format indicator, request/response, message expiry, topic aliases both ways, subscription
// identifiers, no local, retain as published, retain handling), the client's limits (Maximum Packet Size,
// Receive Maximum) and SUBACK/UNSUBACK reason codes, over TCP and WebSocket.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TRANSPORTS, eventually, matrix, publishNumbered, topic, withBroker } from './support.mjs';

const v5 = (clientId, extra = {}) => ({ protocolVersion: 5, clientId, ...extra });

for (const transport of TRANSPORTS) {
  const label = `${transport} v5`;

  test(`${label}: user properties, content type and payload format indicator reach the subscriber`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('props');
      const sub = await ctx.client(transport, v5('sub'));
      await sub.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      await pub.publish(t1, '{"t":21.5}', {
        qos: 1,
        properties: {
          userProperties: { unit: 'celsius', tag: ['x', 'y', 'x'] },
          contentType: 'application/json',
          payloadFormatIndicator: true,
        },
      });
      // A message without properties gets none added.
      await pub.publish(t1, 'bare', { qos: 1 });
      const got = await sub.message(t1, '{"t":21.5}');
      const p = got.packet.properties;
      assert.deepEqual({ ...p.userProperties }, { unit: 'celsius', tag: ['x', 'y', 'x'] });
      assert.equal(p.contentType, 'application/json');
      assert.equal(p.payloadFormatIndicator, true);
      const bare = await sub.message(t1, 'bare');
      const props = { ...bare.packet.properties };
      assert.deepEqual(Object.keys(props).filter((k) => k !== 'topicAlias'), [], JSON.stringify(props));
    }));

  test(`${label}: a payload announced as UTF-8 that is not is refused with 0x99`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('utf8');
      const sub = await ctx.client(transport, v5('sub'));
      await sub.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      await assert.rejects(
        pub.publish(t1, Buffer.from([0xff, 0xfe]), { qos: 1, properties: { payloadFormatIndicator: true } }),
        (err) => err.code === 0x99,
      );
      // Not passed on: the next message is the first the subscriber sees.
      await pub.publish(t1, 'marker', { qos: 1, properties: { payloadFormatIndicator: true } });
      await sub.message(t1, 'marker');
      assert.deepEqual(sub.on(t1).map((m) => m.text), ['marker']);
    }));

  test(`${label}: request/response with response topic and correlation data`, (t) =>
    withBroker(t, async (ctx) => {
      const requests = topic('rpc/requests');
      const replies = topic('rpc/replies');
      const responder = await ctx.client(transport, v5('responder'));
      responder.client.on('message', (tp, payload, packet) => {
        if (tp !== requests) {
          return;
        }
        const { responseTopic, correlationData } = packet.properties ?? {};
        responder.client.publish(responseTopic, `re: ${payload}`, { qos: 1, properties: { correlationData } });
      });
      await responder.subscribe(requests, { qos: 1 });
      const requester = await ctx.client(transport, v5('requester'));
      await requester.subscribe(replies, { qos: 1 });
      for (const id of [1, 2, 3]) {
        await requester.publish(requests, `question ${id}`, {
          qos: 1,
          properties: { responseTopic: replies, correlationData: Buffer.from(`corr-${id}`) },
        });
      }
      await requester.count(replies, 3);
      assert.deepEqual(
        requester.on(replies).map((m) => [m.text, m.packet.properties.correlationData.toString()]),
        [1, 2, 3].map((id) => [`re: question ${id}`, `corr-${id}`]),
      );
      const req = responder.on(requests)[0].packet.properties;
      assert.equal(req.responseTopic, replies);
    }));

  test(`${label}: message expiry interval is passed on, counted down for retained messages`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('expiry');
      const sub = await ctx.client(transport, v5('sub'));
      await sub.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      await pub.publish(t1, 'soon stale', { qos: 1, retain: true, properties: { messageExpiryInterval: 120 } });
      const live = await sub.message(t1, 'soon stale');
      const liveExpiry = live.packet.properties.messageExpiryInterval;
      assert.ok(liveExpiry > 0 && liveExpiry <= 120, `live expiry ${liveExpiry}`);
      const late = await ctx.client(transport, v5('late'));
      await late.subscribe(t1, { qos: 1 });
      const kept = await late.message(t1, 'soon stale');
      const keptExpiry = kept.packet.properties.messageExpiryInterval;
      assert.ok(keptExpiry > 0 && keptExpiry <= 120, `retained expiry ${keptExpiry}`);
    }));

  test(`${label}: topic aliases from the publisher are resolved by the broker`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('alias/in');
      const sub = await ctx.client(transport, v5('sub'));
      await sub.subscribe(t1, { qos: 1 });
      const { client: pub, connack } = await ctx.connect(transport, v5('pub', { autoUseTopicAlias: true }));
      assert.ok(connack.properties.topicAliasMaximum >= 1);
      // The first publish sets alias 1; MQTT.js then sends the topic as alias 1 and an empty name.
      await pub.publish(t1, 'm0', { qos: 1, properties: { topicAlias: 1 } });
      for (let i = 1; i < 5; i++) {
        await pub.publish(t1, `m${i}`, { qos: 1 });
      }
      await sub.count(t1, 5);
      assert.deepEqual(sub.on(t1).map((m) => m.text), ['m0', 'm1', 'm2', 'm3', 'm4']);
      const wire = pub.packets('publish', 'sent').map((p) => [p.topic, p.properties?.topicAlias]);
      assert.deepEqual(wire, [[t1, 1], ['', 1], ['', 1], ['', 1], ['', 1]], 'the aliases were really used');
    }));

  test(`${label}: the broker uses topic aliases towards a client that allows them`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('alias/out');
      const sub = await ctx.client(transport, v5('sub', { properties: { topicAliasMaximum: 4 } }));
      await sub.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      for (let i = 0; i < 5; i++) {
        await pub.publish(t1, `m${i}`, { qos: 1 });
      }
      await sub.count(t1, 5);
      assert.deepEqual(sub.on(t1).map((m) => m.text), ['m0', 'm1', 'm2', 'm3', 'm4']);
      const wire = sub.packets('publish').map((p) => [p.topic.toString(), p.properties?.topicAlias]);
      const alias = wire[0][1];
      assert.ok(alias >= 1 && alias <= 4, `first delivery sets an alias within the client's maximum: ${wire[0]}`);
      assert.deepEqual(wire, [[t1, alias], ...Array(4).fill(['', alias])]);
    }));

  test(`${label}: topic aliases reassigned to other topics by the publisher are followed`, (t) =>
    withBroker(
      t,
      async (ctx) => {
        const base = topic('alias/lru');
        const sub = await ctx.client(transport, v5('sub'));
        await sub.subscribe(`${base}/#`, { qos: 1 });
        // The broker allows 2 aliases; MQTT.js assigns them itself and reuses the least recently used one.
        const pub = await ctx.client(transport, v5('pub', { autoAssignTopicAlias: true }));
        const order = ['a', 'b', 'c', 'a', 'd', 'b', 'b', 'e', 'a'];
        for (const [i, leaf] of order.entries()) {
          await pub.publish(`${base}/${leaf}`, `${i}`, { qos: 1 });
        }
        await sub.count(undefined, order.length);
        assert.deepEqual(sub.messages.map((m) => [m.topic, m.text]), order.map((leaf, i) => [`${base}/${leaf}`, `${i}`]));
        const aliases = pub.packets('publish', 'sent').map((p) => p.properties?.topicAlias);
        assert.ok(aliases.every((a) => a === 1 || a === 2), `aliases used: ${aliases}`);
        assert.ok(pub.packets('publish', 'sent').some((p) => p.topic === ''), 'some publishes went by alias alone');
      },
      { args: ['--topic-alias-maximum', '2'] },
    ));

  test(`${label}: the broker's topic aliases stay right when it has fewer than topics`, (t) =>
    withBroker(t, async (ctx) => {
      const base = topic('alias/few');
      const sub = await ctx.client(transport, v5('sub', { properties: { topicAliasMaximum: 2 } }));
      await sub.subscribe(`${base}/#`, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      const order = ['a', 'b', 'c', 'a', 'd', 'b', 'b', 'e', 'a', 'c'];
      for (const [i, leaf] of order.entries()) {
        await pub.publish(`${base}/${leaf}`, `${i}`, { qos: 1 });
      }
      await sub.count(undefined, order.length);
      assert.deepEqual(sub.messages.map((m) => [m.topic, m.text]), order.map((leaf, i) => [`${base}/${leaf}`, `${i}`]));
      const aliases = sub.packets('publish').map((p) => p.properties?.topicAlias).filter((a) => a !== undefined);
      assert.ok(aliases.every((a) => a >= 1 && a <= 2), `aliases within the client's maximum: ${aliases}`);
    }));

  test(`${label}: the broker keeps to the client's Receive Maximum`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('recvmax');
      const sub = await ctx.client(transport, v5('sub', { properties: { receiveMaximum: 3 } }));
      // No PUBACK ever: MQTT.js acknowledges once handleMessage calls back.
      sub.client.handleMessage = () => {};
      await sub.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      await publishNumbered(pub, t1, 10, 1);
      // All ten are with the subscriber's session: three in flight, the rest queued behind them.
      const state = await eventually(async () => {
        const c = await ctx.broker.client('sub');
        return c.inflight + c.queued === 10 && c;
      }, 'the ten messages to reach the session');
      assert.deepEqual([state.inflight, state.queued], [3, 7]);
    }));

  test(`${label}: subscription identifiers come back with the messages they matched`, (t) =>
    withBroker(t, async (ctx) => {
      const base = topic('subid');
      const sub = await ctx.client(transport, v5('sub'));
      await sub.subscribe(`${base}/a`, { qos: 1, properties: { subscriptionIdentifier: 7 } });
      await sub.subscribe(`${base}/#`, { qos: 1, properties: { subscriptionIdentifier: 300 } });
      await sub.subscribe(`${base}/none`, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      await pub.publish(`${base}/a`, 'both', { qos: 1 });
      await pub.publish(`${base}/b`, 'wildcard only', { qos: 1 });
      await pub.publish(`${base}/none`, 'no identifier', { qos: 1 });
      await sub.message(`${base}/none`, 'no identifier');
      const ids = (m) => [m.packet.properties?.subscriptionIdentifier ?? []].flat().sort((x, y) => x - y);
      // Two matching subscriptions: one delivery carrying both identifiers (MQTT 5 §3.3.4).
      assert.deepEqual(sub.messages.map((m) => [m.text, ids(m)]), [
        ['both', [7, 300]],
        ['wildcard only', [300]],
        ['no identifier', [300]],
      ]);
    }));

  test(`${label}: no local keeps a client's own messages from it`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('nolocal');
      const mark = topic('nolocal-marker');
      const self = await ctx.client(transport, v5('self'));
      await self.subscribe(t1, { qos: 1, nl: true });
      await self.subscribe(mark, { qos: 1 });
      const other = await ctx.client(transport, v5('other'));
      await other.subscribe(t1, { qos: 1 });
      await self.publish(t1, 'mine', { qos: 1 });
      await other.publish(t1, 'theirs', { qos: 1 });
      await self.publish(mark, 'marker', { qos: 1 });
      await other.count(t1, 2);
      await self.message(mark, 'marker');
      await self.message(t1, 'theirs');
      assert.deepEqual(self.on(t1).map((m) => m.text), ['theirs'], 'own message not delivered back');
      assert.deepEqual(other.on(t1).map((m) => m.text), ['mine', 'theirs']);
    }));

  test(`${label}: retain as published keeps the retain flag on live messages`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('rap');
      const keeps = await ctx.client(transport, v5('keeps'));
      await keeps.subscribe(t1, { qos: 1, rap: true });
      const clears = await ctx.client(transport, v5('clears'));
      await clears.subscribe(t1, { qos: 1, rap: false });
      const pub = await ctx.client(transport, v5('pub'));
      await pub.publish(t1, 'retained', { qos: 1, retain: true });
      await pub.publish(t1, 'plain', { qos: 1, retain: false });
      await keeps.count(t1, 2);
      await clears.count(t1, 2);
      assert.deepEqual(keeps.on(t1).map((m) => [m.text, m.packet.retain]), [['retained', true], ['plain', false]]);
      assert.deepEqual(clears.on(t1).map((m) => [m.text, m.packet.retain]), [['retained', false], ['plain', false]]);
    }));

  test(`${label}: retain handling 1 sends retained messages only for a new subscription, 2 never`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('rh');
      const pub = await ctx.client(transport, v5('pub'));
      await pub.publish(t1, 'kept', { qos: 1, retain: true });
      const sub = await ctx.client(transport, v5('sub'));
      await sub.subscribe(t1, { qos: 1, rh: 1 });
      await sub.message(t1, 'kept');
      await sub.subscribe(t1, { qos: 1, rh: 1 }); // the same subscription again: not new
      const never = await ctx.client(transport, v5('never'));
      await never.subscribe(t1, { qos: 1, rh: 2 });
      // Retained messages go out at SUBSCRIBE, before anything published after the SUBACKs.
      await pub.publish(t1, 'marker', { qos: 1 });
      await sub.message(t1, 'marker');
      await never.message(t1, 'marker');
      assert.deepEqual(sub.on(t1).map((m) => m.text), ['kept', 'marker']);
      assert.deepEqual(never.on(t1).map((m) => m.text), ['marker']);
    }));

  test(`${label}: a message larger than the client's Maximum Packet Size is not sent to it`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('maxpkt');
      const small = await ctx.client(transport, v5('small', { properties: { maximumPacketSize: 512 } }));
      await small.subscribe(t1, { qos: 1 });
      const big = await ctx.client(transport, v5('big'));
      await big.subscribe(t1, { qos: 1 });
      const pub = await ctx.client(transport, v5('pub'));
      await pub.publish(t1, 'x'.repeat(2000), { qos: 1 });
      await pub.publish(t1, 'fits', { qos: 1 });
      await small.message(t1, 'fits');
      await big.message(t1, 'fits');
      assert.deepEqual(small.on(t1).map((m) => m.text), ['fits'], 'the oversized message is skipped, the next comes');
      assert.deepEqual(big.on(t1).map((m) => m.text.length), [2000, 4]);
      assert.equal(small.closed, false);
    }));

  test(`${label}: Response Information is sent to a client that requests it`, (t) =>
    withBroker(
      t,
      async (ctx) => {
        const asks = await ctx.connect(transport, v5('asker', { properties: { requestResponseInformation: true } }));
        assert.equal(asks.connack.properties.responseInformation, 'replies/asker/');
        const quiet = await ctx.connect(transport, v5('quiet'));
        assert.equal(quiet.connack.properties?.responseInformation, undefined);
        // The prefix is usable as a response topic.
        await asks.client.subscribe('replies/asker/#', { qos: 1 });
        await quiet.client.publish('replies/asker/1', 'answer', { qos: 1 });
        await asks.client.message('replies/asker/1', 'answer');
      },
      { args: ['--response-information', 'replies/{clientid}/'] },
    ));

  test(`${label}: UNSUBACK says which filters had no subscription`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('unsub');
      const c = await ctx.client(transport, v5('c'));
      await c.subscribe(t1, { qos: 1 });
      const unsuback = await c.unsubscribe([t1, `${t1}/never`]);
      assert.deepEqual(unsuback.granted, [0x00, 0x11]);
    }));

  test(`${label}: SUBACK refuses beyond --max-subscriptions with 0x97`, (t) =>
    withBroker(
      t,
      async (ctx) => {
        const base = topic('quota');
        const c = await ctx.client(transport, v5('c'));
        await c.subscribe([`${base}/1`, `${base}/2`], { qos: 1 });
        const err = await c.subscribe(`${base}/3`, { qos: 1 }).then(
          () => assert.fail('the third subscription was granted'),
          (e) => e,
        );
        assert.deepEqual(err.packet?.granted, [0x97]);
      },
      { args: ['--max-subscriptions', '2'] },
    ));
}

for (const { transport, version, label } of matrix()) {
  test(`${label}: SUBACK refuses an invalid filter and grants the rest`, (t) =>
    withBroker(t, async (ctx) => {
      const t1 = topic('valid');
      const c = await ctx.client(transport, { protocolVersion: version, clientId: 'c' });
      // "$share/group" names a group but no filter: MQTT.js lets it through, the broker must refuse it.
      const err = await c.subscribe({ [t1]: { qos: 1 }, '$share/group': { qos: 1 } }).then(
        () => assert.fail('the invalid filter was granted'),
        (e) => e,
      );
      const refused = version === 5 ? 0x8f : 0x80;
      assert.deepEqual(err.packet?.granted, [1, refused]);
      // The connection stays up and the valid filter works.
      await c.publish(t1, 'still fine', { qos: 1 });
      await c.message(t1, 'still fine');
    }));
}
