// MQTT.js against ractmq: CONNECT/CONNACK (session present for persistent sessions, the server's MQTT 5
// CONNACK properties, assigned client identifiers), DISCONNECT and takeover, over TCP and WebSocket with
// MQTT 3.1.1 and 5.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { eventually, matrix, topic, withBroker } from './support.mjs';

/** Options that make a session outlive its connection: clean session 0, and for MQTT 5 an expiry. */
function persistent(version) {
  return version === 5
    ? { clean: false, properties: { sessionExpiryInterval: 300 } }
    : { clean: false };
}

for (const { transport, version, label } of matrix()) {
  test(`${label}: CONNACK accepts a clean session, DISCONNECT ends it`, (t) =>
    withBroker(t, async (ctx) => {
      const { client, connack } = await ctx.connect(transport, { protocolVersion: version, clientId: 'plain' });
      assert.equal(connack.cmd, 'connack');
      assert.equal(connack.sessionPresent, false);
      if (version === 5) {
        assert.equal(connack.reasonCode, 0);
      } else {
        assert.equal(connack.returnCode, 0);
      }
      const seen = await ctx.broker.client('plain');
      assert.equal(seen.connected, true);
      assert.equal(seen.protocol, version === 5 ? '5.0' : '3.1.1', `protocol in ${JSON.stringify(seen)}`);

      await client.end();
      // A clean session ends with its connection: the broker forgets the client.
      await eventually(async () => (await ctx.broker.client('plain')) === null, 'the broker to drop the clean session');
      assert.deepEqual(client.disconnects, [], 'the broker sent no DISCONNECT');
    }));

  test(`${label}: a persistent session is present on reconnect, gone after a clean one`, (t) =>
    withBroker(t, async (ctx) => {
      const opts = { protocolVersion: version, clientId: 'keeper', ...persistent(version) };
      const first = await ctx.connect(transport, opts);
      assert.equal(first.connack.sessionPresent, false, 'a new session is not present');
      const t1 = topic('persist');
      await first.client.subscribe(t1, { qos: 1 });
      await first.client.end();

      const second = await ctx.connect(transport, opts);
      assert.equal(second.connack.sessionPresent, true, 'the session survived the disconnect');
      // Its subscription too: a message reaches it without subscribing again.
      await second.client.publish(t1, 'still subscribed', { qos: 1 });
      await second.client.message(t1, 'still subscribed');
      await second.client.end();

      const clean = await ctx.connect(transport, { protocolVersion: version, clientId: 'keeper', clean: true });
      assert.equal(clean.connack.sessionPresent, false, 'clean session / clean start discards the session');
      await clean.client.end();
      const third = await ctx.connect(transport, opts);
      assert.equal(third.connack.sessionPresent, false, 'the clean connection ended the stored session');
    }));

  test(`${label}: a second connection with the same client id takes the session over`, (t) =>
    withBroker(t, async (ctx) => {
      const opts = { protocolVersion: version, clientId: 'twin', ...persistent(version) };
      const old = await ctx.client(transport, opts);
      const t1 = topic('takeover');
      await old.subscribe(t1, { qos: 1 });
      const fresh = await ctx.connect(transport, opts);
      assert.equal(fresh.connack.sessionPresent, true, 'the new connection continues the session');
      await old.closedEvent();
      if (version === 5) {
        // MQTT 5: the old connection is told why (0x8E Session taken over).
        await old.until((c) => c.disconnects.length > 0, 'DISCONNECT on the old connection');
        assert.deepEqual(old.disconnects.map((p) => p.reasonCode), [0x8e]);
      }
      await fresh.client.publish(t1, 'after takeover', { qos: 1 });
      await fresh.client.message(t1, 'after takeover');
      assert.equal(old.on(t1).length, 0);
    }));
}

for (const transport of ['tcp', 'ws']) {
  test(`${transport} v5: CONNACK carries the server's limits as configured`, (t) =>
    withBroker(t, async (ctx) => {
      const { connack } = await ctx.connect(transport, { protocolVersion: 5, clientId: 'limits' });
      assert.equal(connack.reasonCode, 0);
      // The defaults: ractmq start --help.
      assert.equal(connack.properties.topicAliasMaximum, 64);
      assert.equal(connack.properties.receiveMaximum, 128);
      assert.equal(connack.properties.maximumPacketSize, 1048576);
      // Absent means "supported" / QoS 2 (MQTT 5 §3.2.2.3): the broker supports all of them by default.
      for (const absent of ['maximumQoS', 'retainAvailable', 'wildcardSubscriptionAvailable',
        'subscriptionIdentifiersAvailable', 'sharedSubscriptionAvailable']) {
        assert.ok(!(absent in connack.properties) || connack.properties[absent] === (absent === 'maximumQoS' ? 2 : true),
          `${absent}: ${connack.properties[absent]}`);
      }
    }));

  test(`${transport} v5: CONNACK reflects the broker's flags`, (t) =>
    withBroker(
      t,
      async (ctx) => {
        const { connack } = await ctx.connect(transport, { protocolVersion: 5, clientId: 'limits', keepalive: 0 });
        assert.equal(connack.properties.topicAliasMaximum, 7);
        assert.equal(connack.properties.receiveMaximum, 20);
        assert.equal(connack.properties.maximumQoS, 1);
        assert.equal(connack.properties.retainAvailable, false);
        assert.equal(connack.properties.wildcardSubscriptionAvailable, false);
        assert.equal(connack.properties.sharedSubscriptionAvailable, false);
        assert.equal(connack.properties.subscriptionIdentifiersAvailable, false);
        // A client asking for no keepalive is told the server's cap (Server Keep Alive).
        assert.equal(connack.properties.serverKeepAlive, 30);
      },
      {
        args: [
          '--topic-alias-maximum', '7', '--receive-maximum', '20', '--max-qos', '1',
          '--retain-available', 'false', '--wildcard-subscriptions', 'false',
          '--shared-subscriptions', 'false', '--subscription-identifiers', 'false', '--server-keep-alive', '30',
        ],
      },
    ));

  test(`${transport} v5: an empty client id gets an Assigned Client Identifier`, (t) =>
    withBroker(t, async (ctx) => {
      const { client, connack } = await ctx.connect(transport, { protocolVersion: 5, clientId: '', clean: true });
      const assigned = connack.properties?.assignedClientIdentifier;
      assert.ok(typeof assigned === 'string' && assigned.length > 0, `assigned id: ${JSON.stringify(connack.properties)}`);
      const seen = await ctx.broker.client(assigned);
      assert.ok(seen?.connected, `the broker knows the client as ${assigned}`);
      await client.end();
    }));

  test(`${transport} v3.1.1: an empty client id with a clean session is accepted`, (t) =>
    withBroker(t, async (ctx) => {
      const { client, connack } = await ctx.connect(transport, { protocolVersion: 4, clientId: '', clean: true });
      assert.equal(connack.returnCode, 0);
      const t1 = topic('anon');
      await client.subscribe(t1, { qos: 1 });
      await client.publish(t1, 'hello', { qos: 1 });
      await client.message(t1, 'hello');
    }));
}

test('a TCP publisher reaches a WebSocket subscriber and the other way round', (t) =>
  withBroker(t, async (ctx) => {
    const tcp = await ctx.client('tcp', { protocolVersion: 5, clientId: 'over-tcp' });
    const ws = await ctx.client('ws', { protocolVersion: 4, clientId: 'over-ws' });
    const toWs = topic('to-ws');
    const toTcp = topic('to-tcp');
    await ws.subscribe(toWs, { qos: 2 });
    await tcp.subscribe(toTcp, { qos: 2 });
    await tcp.publish(toWs, 'from tcp', { qos: 2 });
    await ws.publish(toTcp, 'from ws', { qos: 2 });
    const a = await ws.message(toWs, 'from tcp');
    const b = await tcp.message(toTcp, 'from ws');
    assert.equal(a.packet.qos, 2);
    assert.equal(b.packet.qos, 2);
  }));

for (const transport of ['tcp', 'ws']) {
  test(`${transport} v3.1 (MQIsdp): connects and exchanges messages`, (t) =>
    withBroker(t, async (ctx) => {
      const opts = { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'old-timer' };
      const { client, connack } = await ctx.connect(transport, opts);
      assert.equal(connack.returnCode, 0);
      assert.equal((await ctx.broker.client('old-timer')).protocol, '3.1');
      const t1 = topic('v31');
      await client.subscribe(t1, { qos: 2 });
      await client.publish(t1, 'from 1999', { qos: 2 });
      const got = await client.message(t1, 'from 1999');
      assert.equal(got.packet.qos, 2);
    }));

  for (const version of [4, 5]) {
    const label = `${transport} v${version === 4 ? '3.1.1' : '5'}`;

    test(`${label}: keepalive PINGREQs are answered`, (t) =>
      withBroker(t, async (ctx) => {
        const c = await ctx.client(transport, { protocolVersion: version, clientId: 'pinger', keepalive: 1 });
        // MQTT.js pings after a second without traffic.
        await c.until((x) => x.packets('pingresp').length >= 1, 'a PINGRESP');
        assert.ok(c.packets('pingreq', 'sent').length >= 1);
        assert.equal(c.closed, false);
      }));

    test(`${label}: user name and password are checked`, (t) =>
      withBroker(
        t,
        async (ctx) => {
          const good = await ctx.connect(transport, {
            protocolVersion: version, clientId: 'good', username: 'alice', password: 's3cret',
          });
          assert.equal(good.connack.sessionPresent, false);
          const refused = await ctx
            .connect(transport, { protocolVersion: version, clientId: 'bad', username: 'alice', password: 'wrong' })
            .then(() => assert.fail('connected with a wrong password'), (e) => e);
          // 3.1.1: return code 4 (bad user name or password); 5: 0x86.
          assert.equal(refused.code, version === 5 ? 0x86 : 4, String(refused));
        },
        { args: ['--user', 'alice:s3cret'] },
      ));

    test(`${label}: MQTT.js reconnects by itself and resubscribes`, (t) =>
      withBroker(t, async (ctx) => {
        const t1 = topic('reconnect');
        // What web apps run with: automatic reconnection (here every 100 ms) and resubscription.
        const c = await ctx.client(transport, { protocolVersion: version, clientId: 'webapp', reconnectPeriod: 100 });
        await c.subscribe(t1, { qos: 1 });
        c.client.stream.destroy();
        await c.until((x) => x.packets('connack').length === 2, 'MQTT.js to reconnect');
        // The resubscription is a SUBSCRIBE MQTT.js sends after the new CONNACK: wait for its SUBACK.
        await c.until((x) => x.packets('suback').length === 2, 'the SUBACK of the resubscription');
        const pub = await ctx.client(transport, { protocolVersion: version, clientId: 'pub' });
        await pub.publish(t1, 'after reconnect', { qos: 1 });
        await c.message(t1, 'after reconnect');
        assert.deepEqual(c.on(t1).map((m) => m.text), ['after reconnect']);
      }));
  }
}
