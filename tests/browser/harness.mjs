// Starts the real orgwall binary on a free port with a fresh database of its own, and a
// headless Chromium (Debian's package) driven by playwright-core. Nothing is mocked.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCREENSHOTS = join(REPO, 'target', 'console-screenshots');

/** A superuser URL without a database name, as the Rust tests use. */
const SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432';

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

function psql(sql) {
  execFileSync('psql', [`${SERVER_URL}/postgres`, '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', sql], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** A running orgwall: its URL, admin token and how to stop it. */
export class Orgwall {
  static async start({ adminToken = `console-test-${randomBytes(16).toString('hex')}` } = {}) {
    const bin = resolve(REPO, process.env.ORGWALL_BIN ?? 'target/debug/orgwall');
    const dbName = `orgwall_browser_${randomUUID().replaceAll('-', '')}`;
    const databaseUrl = `${SERVER_URL}/${dbName}`;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // Its own working directory, so that no .env or orgwall.toml of the checkout applies.
    const cwd = mkdtempSync(join(tmpdir(), 'orgwall-browser-'));
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? cwd,
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: url,
      ADMIN_TOKEN: adminToken,
      METRICS_ADDR: 'off',
      WORKERS: '2',
      RUST_LOG: 'info',
    };
    mkdirSync(SCREENSHOTS, { recursive: true });
    execFileSync(bin, ['migrate'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const logPath = join(SCREENSHOTS, 'orgwall-server.log');
    const log = createWriteStream(logPath);
    const child = spawn(bin, ['serve'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    const exited = new Promise((ok) => child.on('exit', (code, signal) => ok({ code, signal })));
    const self = new Orgwall({ url, adminToken, dbName, child, exited, cwd, logPath });
    try {
      await self.#waitHealthy();
    } catch (e) {
      await self.stop();
      throw e;
    }
    return self;
  }

  constructor(fields) {
    Object.assign(this, fields);
  }

  async #waitHealthy() {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`orgwall exited: see ${this.logPath}`);
      try {
        const res = await fetch(`${this.url}/health`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`orgwall did not become healthy: see ${this.logPath}`);
  }

  /** The server's log so far (for "no secret in the log" checks). */
  log() {
    return readFileSync(this.logPath, 'utf8');
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    try {
      psql(`drop database if exists "${this.dbName}" with (force)`);
    } finally {
      rmSync(this.cwd, { recursive: true, force: true });
    }
  }

  /** A call to the admin API, outside the browser. */
  async admin(method, path, body) {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${this.adminToken}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** A real client-credentials request to the token endpoint (client_secret_post). */
  async tokenRequest(clientId, clientSecret, audience) {
    const res = await fetch(`${this.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_secret: clientSecret,
        audience,
      }),
    });
    return { status: res.status, body: await res.json() };
  }

  /** A read of the resource API with a bearer token. */
  async read(path, token) {
    const res = await fetch(`${this.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  }
}

/** Debian's Chromium, headless, with a fresh profile (Playwright makes a new user-data dir per
 * launch) and nothing that phones home. Each test then opens its own context. */
export async function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
