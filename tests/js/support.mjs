// What every MQTT.js interoperability test shares: a broker per test (withBroker), MQTT.js clients that
// record what reaches them, and waits that end in an event or fail after a deadline, never a sleep (the one
// exception, `pass`, is for expiry intervals, where the spec is about time). A failing test gets the broker's
// log in its report.

import assert from 'node:assert/strict';
import mqtt from 'mqtt';

import { Broker } from './broker.mjs';

/** How long any single wait may take before the test fails. */
export const TIMEOUT_MS = 10_000;
/** How long a whole test may take: the last resort against a wait that has no deadline of its own. */
const TEST_TIMEOUT_MS = 60_000;

/** Both transports every test runs over. */
export const TRANSPORTS = ['tcp', 'ws'];
/** MQTT 3.1.1 (protocolVersion 4) and 5. */
export const VERSIONS = [4, 5];

/** Every (transport, protocol version) pair, with a label for test names. */
export function matrix(versions = VERSIONS) {
  const out = [];
  for (const transport of TRANSPORTS) {
    for (const version of versions) {
      out.push({ transport, version, label: `${transport} v${version === 4 ? '3.1.1' : '5'}` });
    }
  }
  return out;
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within(promise, what, ms = TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `probe` (async) until it returns a truthy value, which it resolves to; fails after `ms`. */
export async function eventually(probe, what, ms = TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) {
      return last;
    }
    await new Promise((resolve) => setTimeout(resolve, 20)); // polling interval, not a wait for an outcome
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** A time that has to pass (an expiry interval), as opposed to an event: used only where the spec is about time. */
export const pass = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An MQTT.js client with everything it received recorded, in order. */
export class TestClient {
  constructor(name, client) {
    this.name = name;
    this.client = client;
    /** Every PUBLISH delivered: {topic, text, payload, packet}. */
    this.messages = [];
    /** Errors MQTT.js emitted; a test fails on any it did not expect. */
    this.errors = [];
    /** DISCONNECT packets the server sent (MQTT 5). */
    this.disconnects = [];
    /** Every packet MQTT.js read from and wrote to the broker, in order. */
    this.received = [];
    this.sent = [];
    this.closed = false;
    this.expectErrors = false;
    this.waiters = [];
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, text: payload.toString('utf8'), packet });
      this.#check();
    });
    // Copies, as they were on the wire: MQTT.js rewrites some packets afterwards (topic aliases).
    const copy = (p) => ({ ...p, properties: p.properties && { ...p.properties } });
    client.on('packetreceive', (packet) => {
      this.received.push(copy(packet));
      this.#check();
    });
    client.on('packetsend', (packet) => {
      this.sent.push(copy(packet));
      this.#check();
    });
    client.on('error', (err) => {
      this.errors.push(err);
      this.#check();
    });
    client.on('disconnect', (packet) => {
      this.disconnects.push(packet);
      this.#check();
    });
    /** Rejections of the operations in progress, for when the connection closes under them. */
    this.onClose = new Set();
    client.on('connect', () => {
      this.closed = false; // MQTT.js reconnected by itself
      this.#check();
    });
    client.on('close', () => {
      this.closed = true;
      for (const reject of this.onClose) {
        reject();
      }
      this.#check();
    });
  }

  #check() {
    this.waiters = this.waiters.filter((w) => {
      const value = w.predicate(this);
      if (value) {
        w.resolve(value);
        return false;
      }
      return true;
    });
  }

  /** Resolves to `predicate(this)` once it is truthy, checked now and after every event. */
  until(predicate, what, ms = TIMEOUT_MS) {
    const now = predicate(this);
    if (now) {
      return Promise.resolve(now);
    }
    return within(
      new Promise((resolve) => this.waiters.push({ predicate, resolve })),
      `${this.name}: ${what}`,
      ms,
    );
  }

  /** The messages received on `topic` (or all). */
  on(topic) {
    return topic === undefined ? this.messages : this.messages.filter((m) => m.topic === topic);
  }

  /**
   * `promise` (an MQTT.js operation), failing after the deadline or as soon as the connection closes: MQTT.js
   * without reconnection would otherwise keep the operation pending forever.
   */
  #op(promise, what) {
    let reject;
    const closed = new Promise((_, r) => {
      reject = () => r(new Error(`${this.name}: the connection closed during ${what}${this.#why()}`));
    });
    if (this.closed) {
      reject();
    } else {
      this.onClose.add(reject);
    }
    return within(Promise.race([promise, closed]), `${this.name}: ${what}`).finally(() => this.onClose.delete(reject));
  }

  #why() {
    const last = this.disconnects.at(-1);
    return last ? ` (DISCONNECT ${last.reasonCode}${last.properties?.reasonString ? `: ${last.properties.reasonString}` : ''})` : '';
  }

  /** publishAsync: resolves once acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP) or, at QoS 0, written. */
  publish(topic, payload, opts = {}) {
    return this.#op(this.client.publishAsync(topic, payload, opts), `PUBLISH to ${topic}`);
  }

  /** subscribeAsync: resolves to the granted subscriptions, rejects on a refusal (err.packet is the SUBACK). */
  subscribe(filters, opts) {
    return this.#op(this.client.subscribeAsync(filters, opts), `SUBSCRIBE ${JSON.stringify(filters)}`);
  }

  /** unsubscribeAsync: resolves to the UNSUBACK. */
  unsubscribe(filters, opts) {
    return this.#op(this.client.unsubscribeAsync(filters, opts), `UNSUBSCRIBE ${JSON.stringify(filters)}`);
  }

  /** How many packets of type `cmd` ('puback', ...) were received (or, with `dir` 'sent', sent). */
  packets(cmd, dir = 'received') {
    return this[dir].filter((p) => p.cmd === cmd);
  }

  /** Resolves to the first message on `topic` whose text is `text` (any text when undefined). */
  message(topic, text) {
    return this.until(
      (c) => c.messages.find((m) => m.topic === topic && (text === undefined || m.text === text)),
      `a message on ${topic}${text === undefined ? '' : ` saying ${JSON.stringify(text)}`}`,
    );
  }

  /** Resolves once `n` messages have arrived on `topic`. */
  count(topic, n) {
    return this.until((c) => c.on(topic).length >= n && c.on(topic), `${n} messages on ${topic}`);
  }

  /** Resolves once MQTT.js has closed the connection. */
  closedEvent() {
    return this.until((c) => c.closed, 'the connection to close');
  }

  /** end() with a DISCONNECT (optionally MQTT 5 options such as {reasonCode}), resolved when closed. */
  async end(opts = {}) {
    await within(this.client.endAsync(false, opts), `${this.name}: end()`);
    await this.closedEvent();
  }

  /** Closes the socket without DISCONNECT, as a crashed client or a lost network would. */
  async kill() {
    this.client.stream.destroy();
    await this.closedEvent();
  }
}

/** What a test gets: its broker and a way to make MQTT.js clients on it. */
export class Ctx {
  constructor(broker) {
    this.broker = broker;
    this.clients = [];
  }

  /**
   * Connects an MQTT.js client over `transport` ('tcp' or 'ws'); resolves to {client, connack} once CONNACK
   * arrives, rejects if the connection fails or closes first. Automatic reconnection is off.
   */
  async connect(transport, options = {}) {
    const url = transport === 'tcp' ? this.broker.tcpUrl : this.broker.wsUrl;
    const name = `${options.clientId ?? '?'}@${transport}`;
    const client = mqtt.connect(url, {
      reconnectPeriod: 0,
      connectTimeout: TIMEOUT_MS,
      ...options,
    });
    const tc = new TestClient(name, client);
    this.clients.push(tc);
    try {
      const connack = await within(
        new Promise((resolve, reject) => {
          client.once('connect', resolve);
          client.once('error', reject);
          client.once('close', () => reject(new Error(`${name}: closed before CONNACK`)));
        }),
        `${name}: CONNACK`,
      );
      return { client: tc, connack };
    } catch (e) {
      tc.expectErrors = true; // the caller gets the error itself
      throw e;
    }
  }

  /** `connect` for when only the client matters. */
  async client(transport, options = {}) {
    return (await this.connect(transport, options)).client;
  }

  /** end(true) on every client, also those closed already: it stops MQTT.js's reconnection timer. */
  async closeAll() {
    await Promise.all(this.clients.map((c) => new Promise((resolve) => c.client.end(true, {}, () => resolve()))));
  }
}

/**
 * Runs `fn(ctx)` against a broker of its own started with `args`, stops the broker after, and fails the test
 * if the broker died or a client saw an error it did not expect. On failure the broker's log is attached to
 * the test's report as a diagnostic.
 */
export async function withBroker(t, fn, { args = [] } = {}) {
  const broker = await Broker.start(args);
  const ctx = new Ctx(broker);
  try {
    await within(fn(ctx), 'the test to finish', TEST_TIMEOUT_MS);
    assert.ok(broker.alive(), `the broker exited during the test: ${JSON.stringify(broker.exit)}`);
    for (const c of ctx.clients) {
      if (!c.expectErrors) {
        assert.deepEqual(c.errors.map(String), [], `${c.name} got errors`);
      }
    }
  } catch (e) {
    let log = broker.logs();
    if (log.length > 20_000) {
      log = `...\n${log.slice(-20_000)}`;
    }
    // One diagnostic per line: reporters print each on a line of its own (TAP escapes newlines inside one).
    t.diagnostic(`ractmq log (tcp ${broker.port}, ws ${broker.wsPort}, api ${broker.apiPort}):`);
    for (const line of log.trimEnd().split('\n')) {
      t.diagnostic(`  ${line}`);
    }
    throw e;
  } finally {
    await within(ctx.closeAll(), 'the clients to close').catch(() => {});
    await broker.stop();
  }
}

/**
 * Publishes `n` numbered messages ("0".."n-1") at `qos` without waiting between them; resolves once MQTT.js
 * has them acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP) or, for QoS 0, written.
 */
export function publishNumbered(tc, topic, n, qos, opts = {}) {
  const sends = [];
  for (let i = 0; i < n; i++) {
    sends.push(tc.publish(topic, String(i), { qos, ...opts }));
  }
  return Promise.all(sends);
}

/** ["0", ..., "n-1"]. */
export const numbers = (n) => Array.from({ length: n }, (_, i) => String(i));

/** A fresh topic (so a test can reuse a broker-wide filter without seeing another test's traffic). */
let topicSeq = 0;
export const topic = (name) => `mqttjs/${name}/${process.pid}-${++topicSeq}`;
