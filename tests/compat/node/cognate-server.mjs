// Starts a real `cognate serve` for the Node compatibility tests (one per test file).
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import {
  CognitoIdentityProviderClient, CreateUserPoolCommand, CreateUserPoolClientCommand, DeleteUserPoolCommand,
} from '@aws-sdk/client-cognito-identity-provider';

export const ACCESS_KEY_ID = 'AKIDCOGNATETEST';
export const SECRET_ACCESS_KEY = 'cognate-test-secret-key';
export const REGION = 'us-east-1';
export const GOOD_PASSWORD = 'Correct-Horse-9battery';
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function cognateBin() {
  const raw = process.env.COGNATE_BIN || 'target/debug/cognate';
  return isAbsolute(raw) ? raw : join(REPO_ROOT, raw);
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startServer() {
  const bin = cognateBin();
  if (!existsSync(bin)) throw new Error(`cognate binary not found at ${bin}; build it or set COGNATE_BIN`);
  const work = mkdtempSync(join(tmpdir(), 'cognate-node-'));
  const dataDir = join(work, 'data');
  const logPath = join(work, 'server.log');
  const log = openSync(logPath, 'w');
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc = spawn(
    bin,
    ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--password-hashing', 'development'],
    {
      env: { ...process.env, COGNATE_ACCESS_KEY_ID: ACCESS_KEY_ID, COGNATE_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY },
      stdio: ['ignore', log, log],
    },
  );
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !exited) {
    try {
      const r = await fetch(`${endpoint}/health`);
      if (r.status === 200) {
        return {
          endpoint,
          logPath,
          async stop() {
            if (!exited) {
              const done = new Promise((r2) => proc.once('exit', r2));
              proc.kill('SIGTERM');
              const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
              await done;
              clearTimeout(timer);
            }
            closeSync(log);
            // keep the data dir and log only when asked to (COGNATE_COMPAT_KEEP=1)
            if (!process.env.COGNATE_COMPAT_KEEP) rmSync(work, { recursive: true, force: true });
          },
        };
      }
    } catch { /* not up yet */ }
    await sleep(200);
  }
  if (!exited) proc.kill('SIGKILL');
  let tail = '';
  try { tail = readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n'); } catch { /* ignore */ }
  throw new Error(`cognate did not become healthy on ${endpoint} within 30 s (${JSON.stringify(exited)})\n${tail}`);
}

export function makeClient(endpoint, credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }) {
  return new CognitoIdentityProviderClient({ region: REGION, endpoint, credentials, maxAttempts: 1 });
}

// A client whose requests leave without any SigV4 headers: signing still runs, then a
// middleware just before the HTTP handler strips what it added.
export function makeUnsignedClient(endpoint) {
  const client = makeClient(endpoint);
  client.middlewareStack.add(
    (next) => async (args) => {
      const headers = args.request?.headers ?? {};
      for (const h of Object.keys(headers)) {
        const l = h.toLowerCase();
        if (l === 'authorization' || l === 'x-amz-date' || l === 'x-amz-content-sha256' || l === 'x-amz-security-token') {
          delete headers[h];
        }
      }
      return next(args);
    },
    { step: 'deserialize', priority: 'low', name: 'cognateStripSignature' },
  );
  return client;
}

export async function outbox(endpoint, poolId, username) {
  const url = new URL('/_cognate/messages', endpoint);
  url.searchParams.set('pool_id', poolId);
  url.searchParams.set('username', username);
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`outbox answered ${r.status}: ${await r.text()}`);
  const body = await r.json();
  if (!Array.isArray(body.messages)) throw new Error(`outbox body has no messages list: ${JSON.stringify(body)}`);
  return body.messages;
}

export async function waitForMessages(endpoint, poolId, username, kind, count = 1, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const msgs = (await outbox(endpoint, poolId, username)).filter((m) => m.kind === kind);
    if (msgs.length >= count) return msgs;
    if (Date.now() > deadline) {
      throw new Error(`expected ${count} ${kind} message(s) for ${username}: ${JSON.stringify(await outbox(endpoint, poolId, username))}`);
    }
    await sleep(100);
  }
}

export function unique(prefix = 't') {
  return prefix + Math.random().toString(16).slice(2, 12);
}

export function attrs(list) {
  return Object.fromEntries((list ?? []).map((a) => [a.Name, a.Value]));
}

/**
 * Registers node:test hooks that start a server and create one pool and app client for the file
 * (deleted again at the end). `setup(admin, poolId)` may configure the pool before the client is
 * made. The returned object is filled in once `before` has run.
 */
export function poolFixture(prefix, setup) {
  const f = { server: null, admin: null, poolId: null, clientId: null };
  before(async () => {
    f.server = await startServer();
    f.admin = makeClient(f.server.endpoint);
    f.poolId = (await f.admin.send(new CreateUserPoolCommand({ PoolName: unique(prefix) }))).UserPool.Id;
    if (setup) await setup(f.admin, f.poolId);
    f.clientId = (await f.admin.send(new CreateUserPoolClientCommand({
      UserPoolId: f.poolId, ClientName: `${prefix}-web`,
    }))).UserPoolClient.ClientId;
  });
  after(async () => {
    try { await f.admin?.send(new DeleteUserPoolCommand({ UserPoolId: f.poolId })); } catch { /* best effort */ }
    f.admin?.destroy();
    await f.server?.stop();
  });
  return f;
}
