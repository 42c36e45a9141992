// Starts and stops a real `ractmq` process for the MQTT.js interoperability tests: every test gets its own
// broker on free loopback ports (MQTT/TCP, MQTT over WebSocket, REST API) with its own data directory, so
// tests share nothing. The binary is $RACTMQ_BIN or <repo>/target/release/ractmq; the suite never builds it.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
/** The HTTP path the WebSocket listener serves by default (`--ws-path`). */
export const WS_PATH = '/mqtt';

export function brokerBinary() {
  return process.env.RACTMQ_BIN || path.join(REPO_ROOT, 'target', 'release', 'ractmq');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A running `ractmq start` process. */
export class Broker {
  host = '127.0.0.1';

  constructor(args) {
    this.args = args;
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ractmq-mqttjs-'));
    this.output = [];
    this.proc = null;
    this.exit = null;
  }

  /** Starts a broker with `args` added to the listener flags; resolves once it accepts connections. */
  static async start(args = []) {
    const broker = new Broker(args);
    try {
      let lastError;
      // Another process may take a free port between the probe and the broker's bind: try again then.
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await broker.#spawnAndWait();
          return broker;
        } catch (e) {
          lastError = e;
          await broker.#terminate();
        }
      }
      throw lastError;
    } catch (e) {
      broker.#removeDataDir();
      throw e;
    }
  }

  get tcpUrl() {
    return `mqtt://${this.host}:${this.port}`;
  }

  get wsUrl() {
    return `ws://${this.host}:${this.wsPort}${WS_PATH}`;
  }

  get apiUrl() {
    return `http://${this.host}:${this.apiPort}/api/v1`;
  }

  /** The broker's output so far (stdout and stderr interleaved). */
  logs() {
    return Buffer.concat(this.output).toString('utf8');
  }

  alive() {
    return this.proc !== null && this.exit === null;
  }

  async #spawnAndWait() {
    this.port = await freePort();
    this.wsPort = await freePort();
    this.apiPort = await freePort();
    const binary = brokerBinary();
    const argv = [
      'start',
      '--listen', `${this.host}:${this.port}`,
      '--ws-listen', `${this.host}:${this.wsPort}`,
      '--api-listen', `${this.host}:${this.apiPort}`,
      '--data-dir', this.dataDir,
      ...this.args,
    ];
    this.output.push(Buffer.from(`$ ${binary} ${argv.join(' ')}\n`));
    const proc = spawn(binary, argv, {
      env: { ...process.env, NO_COLOR: '1', RUST_LOG: process.env.RUST_LOG || 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.exit = null;
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      proc.once('error', (err) => {
        this.output.push(Buffer.from(`cannot run ${binary}: ${err.message}\n`));
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });
    proc.stdout.on('data', (chunk) => this.output.push(chunk));
    proc.stderr.on('data', (chunk) => this.output.push(chunk));

    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!this.alive()) {
        throw new Error(`ractmq exited at start (${JSON.stringify(this.exit)}):\n${this.logs().slice(-4000)}`);
      }
      // Ready means every supervisor and listener is up, so both MQTT listeners accept connections.
      if (await this.#ready()) {
        return;
      }
      await delay(20); // polling interval while the broker starts, not a wait for an outcome
    }
    throw new Error(`ractmq did not become ready within ${STARTUP_TIMEOUT_MS} ms:\n${this.logs().slice(-4000)}`);
  }

  async #ready() {
    try {
      const res = await fetch(`${this.apiUrl}/health/ready`);
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** GET on the REST API: the parsed JSON body and the status. */
  async api(pathname) {
    const res = await fetch(`${this.apiUrl}${pathname}`);
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    return { status: res.status, body };
  }

  /** The session of `clientId` as the REST API shows it, or null when the broker has none. */
  async client(clientId) {
    const { status, body } = await this.api(`/clients/${encodeURIComponent(clientId)}`);
    if (status === 404) {
      return null;
    }
    if (status !== 200) {
      throw new Error(`GET /clients/${clientId}: HTTP ${status} ${JSON.stringify(body)}`);
    }
    return body;
  }

  /** The retained message on `topic` as the REST API shows it, or null when there is none. */
  async retained(topic) {
    const encoded = topic.split('/').map(encodeURIComponent).join('/');
    const { status, body } = await this.api(`/retained/${encoded}`);
    if (status === 404) {
      return null;
    }
    if (status !== 200) {
      throw new Error(`GET /retained/${topic}: HTTP ${status} ${JSON.stringify(body)}`);
    }
    return body;
  }

  async #terminate() {
    const proc = this.proc;
    if (proc === null || this.exit !== null) {
      return this.exit;
    }
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  #removeDataDir() {
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** SIGTERM, then waits for the process to exit (SIGKILL after 10 s); removes the data directory. */
  async stop() {
    const exit = await this.#terminate();
    this.#removeDataDir();
    return exit;
  }
}
