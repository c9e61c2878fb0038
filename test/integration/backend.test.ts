/**
 * Backend services over real NATS (JetStream) with three real gateway node processes and service
 * instances as child processes (SIGKILL-able): client sends handled exactly once by one instance of a
 * service, durable sends surviving an instance crash and waiting for a service that is not running,
 * dead letters, RPC across nodes with typed errors, and the SDK's publish reaching rooms like HTTP does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import WebSocket from 'ws';
import { service, type Service } from '../../src/backend/index.js';
import { connect as connectClient } from '../../src/client/index.js';
import { ensureServiceStream } from '../../src/backend/streams.js';
import { API_PUBLISH, DURABLE_CONSUMER, streamName } from '../../src/backend/wire.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { JWT_SECRET, token } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/service-process.mjs', import.meta.url));
const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const clients: TestClient[] = [];
const instances: Instance[] = [];
let nats: TestServer;
let nc: NatsConnection;

interface Instance {
  readonly child: ChildProcess;
  readonly events: Record<string, unknown>[];
  kill(): Promise<void>;
}

/** `mayExit`: an instance that dies before or soon after it is ready is returned, not an error. */
async function startInstance(svc: string, env: Record<string, string> = {}, mayExit = false): Promise<Instance> {
  const child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, NATS_URL: nats.url, SERVICE: svc, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Record<string, unknown>[] = [];
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const inst: Instance = {
    child,
    events,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  instances.push(inst);
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  await waitFor(() => events.some((e) => e.ev === 'ready') || gone(), 20_000, `service ${svc} ready`);
  if (gone() && !mayExit) throw new Error(`service exited: ${stderr}`);
  return inst;
}

const handled = (insts: Instance[], name = 'create'): Record<string, unknown>[] =>
  insts.flatMap((i) => i.events.filter((e) => e.ev === 'handled' && e.name === name));

async function client(n: NodeProcess, user: string): Promise<TestClient> {
  const c = await TestClient.connect(n.wsUrl, { user });
  clients.push(c);
  return c;
}

/** Sends `count` frames from one client with at most `window` awaiting replies; resolves with the replies. */
async function pipeline(c: TestClient, count: number, frame: (i: number) => Record<string, unknown>, window = 100): Promise<Frame[]> {
  const replies: Frame[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      replies.push(await c.request(frame(i), 30_000));
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return replies;
}

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  const redis = await startRedisServer();
  const pg = await startPostgres();
  servers.push(nats, redis, pg);
  nc = await connect({ servers: nats.url });
  // A durable queue created with a small bound before the nodes start: they use it as it is.
  await ensureServiceStream(await jetstreamManager(nc), 'tiny', { maxMsgs: 5 });
  for (let i = 1; i <= 3; i++) {
    nodes.push(
      await startNodeProcess({
        args: [
          '--node-id',
          `node-${i}`,
          '--nats',
          nats.url,
          '--redis',
          redis.url,
          '--database',
          pg.url,
          '--durable-services',
          'ledger,later,tiny,slowq,poison',
          '--jwt-secret',
          JWT_SECRET,
          '--service-send-timeout-ms',
          '20000',
        ],
      }),
    );
  }
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const i of instances) await i.kill();
  await nc?.close();
  for (const n of nodes) await n.kill();
  for (const s of servers) await s.dispose();
});

describe('client sends to backend services', () => {
  it('3,000 fire-and-forget sends across 3 nodes are each handled once by one of 3 instances', async () => {
    const insts = [await startInstance('orders'), await startInstance('orders'), await startInstance('orders')];
    const cs = await Promise.all(nodes.map((n, i) => client(n, `sender-${i}`)));
    const replies = await Promise.all(
      cs.map((c, k) => pipeline(c, 1000, (i) => ({ type: 'send', topic: 'orders.create', data: { n: i }, idem: `o-${k}-${i}` }))),
    );
    const all = replies.flat();
    expect(all.filter((f) => f.type === 'sent')).toHaveLength(3000);
    expect(all.every((f) => f.durable === false)).toBe(true);
    await waitFor(() => handled(insts).length >= 3000, 30_000, '3000 handled');
    const got = handled(insts);
    expect(got).toHaveLength(3000);
    expect(new Set(got.map((e) => e.idem)).size).toBe(3000);
    // Every instance took a share, and the sender's identity and node came along.
    for (const i of insts) expect(handled([i]).length).toBeGreaterThan(0);
    const one = got.find((e) => e.idem === 'o-1-7')!;
    expect(one).toMatchObject({ user: 'sender-1', tenant: 'default', node: 'node-2', kind: 'send', deliveries: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(handled(insts)).toHaveLength(3000);
  }, 60_000);

  it('the token bounds which topics a client may send to and call', async () => {
    const c = await TestClient.connect(nodes[0]!.wsUrl, { token: await token('limited', { services: { send: ['nobody.*'] } }) });
    clients.push(c);
    expect(await c.request({ type: 'send', topic: 'orders.create', data: 1 })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await c.request({ type: 'rpc', topic: 'nobody.echo', data: 1 })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await c.request({ type: 'send', topic: 'nobody.create', data: 1 })).toMatchObject({ type: 'error', code: 'no_service' });
    const metrics = await (await fetch(`${nodes[0]!.url}/metrics`)).text();
    expect(metrics).toMatch(/switchboard_service_requests_total\{[^}]*kind="send"[^}]*result="forbidden"[^}]*\} 1/);
  });

  it('a fire-and-forget send to a service with no instance gets no_service', async () => {
    const c = await client(nodes[0]!, 'lonely');
    const r = await c.request({ type: 'send', topic: 'nobody.create', data: 1 });
    expect(r).toMatchObject({ type: 'error', code: 'no_service', retryable: true });
    const bad = await c.request({ type: 'send', topic: 'no-dot', data: 1 });
    expect(bad).toMatchObject({ type: 'error', code: 'bad_topic' });
  });

  it('durable: an instance killed mid-stream loses nothing; every send is handled (once after dedupe)', async () => {
    const env = { DURABLE: '1', ACK_WAIT_MS: '2000', WORK_MS: '2' };
    // The victim's handlers are slow (64 at a time, 500 ms each) while it keeps pulling its share, so it
    // still holds pulled, unacked messages when it is killed, even if the kill comes late: they must
    // come back to the survivors as redeliveries.
    const insts = [await startInstance('ledger', { ...env, WORK_MS: '500' }), await startInstance('ledger', env), await startInstance('ledger', env)];
    const cs = await Promise.all(nodes.map((n, i) => client(n, `payer-${i}`)));
    const sending = Promise.all(cs.map((c, k) => pipeline(c, 500, (i) => ({ type: 'send', topic: 'ledger.create', data: { n: i }, idem: `l-${k}-${i}` }), 50)));
    await waitFor(() => handled([insts[0]!]).length >= 50, 30_000, 'victim handled some');
    await insts[0]!.kill();
    const replies = (await sending).flat();
    expect(replies.filter((f) => f.type === 'sent' && f.durable === true)).toHaveLength(1500);
    await waitFor(() => new Set(handled(insts).map((e) => e.idem)).size >= 1500, 40_000, 'all 1500 handled');
    const ids = handled(insts).map((e) => e.idem as string);
    expect(new Set(ids).size).toBe(1500);
    for (let k = 0; k < 3; k++) for (let i = 0; i < 500; i += 97) expect(ids).toContain(`l-${k}-${i}`);
    // The crash did strand unacked messages, and they came back to the survivors as redeliveries.
    expect(handled(insts.slice(1)).some((e) => (e.deliveries as number) > 1)).toBe(true);
    for (const i of insts.slice(1)) await i.kill();
  }, 90_000);

  it("durable: a message waiting for a busy instance's handler slot longer than the ack wait is not handed to a second instance", async () => {
    // Ack wait 2 s (kept alive every ackWait / 3, so a starved instance still extends it in time), handlers
    // take 1.5 s one at a time. With 6 messages over 2 instances one instance gets at least 3: its third
    // waits 3 s > the ack wait for its slot, so it is redelivered unless it is kept alive while queued.
    const count = 6;
    const env = { DURABLE: '1', ACK_WAIT_MS: '2000', WORK_MS: '1500', CONCURRENCY: '1' };
    const insts = [await startInstance('slowq', env), await startInstance('slowq', env)];
    const c = await client(nodes[0]!, 'slow-sender');
    const replies = await pipeline(c, count, (i) => ({ type: 'send', topic: 'slowq.create', data: { i }, idem: `s-${i}` }), count);
    expect(replies.filter((f) => f.type === 'sent' && f.durable === true)).toHaveLength(count);
    await waitFor(() => new Set(handled(insts).map((e) => e.idem)).size >= count, 30_000, `all ${count} handled`);
    // Once every message is acked nothing can be redelivered any more; the consumer's delivery count
    // then says whether any message was handed out twice (also a copy still waiting in a queue).
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.consumers.info(streamName('slowq'), DURABLE_CONSUMER)).num_ack_pending === 0, 20_000, 'every message acked', 100);
    const info = await jsm.consumers.info(streamName('slowq'), DURABLE_CONSUMER);
    expect(info.delivered.consumer_seq).toBe(count);
    const ids = handled(insts).map((e) => e.idem as string);
    expect(ids.sort()).toEqual(Array.from({ length: count }, (_, i) => `s-${i}`).sort());
    for (const i of insts) await i.kill();
  }, 60_000);

  it('durable: sends wait while no instance runs and are handled when one starts; a repeated idem is stored once', async () => {
    const c = await client(nodes[1]!, 'early');
    const replies = await pipeline(c, 100, (i) => ({ type: 'send', topic: 'later.create', data: i, idem: `w-${i}` }), 20);
    expect(replies.every((f) => f.type === 'sent' && f.durable === true && f.duplicate === false)).toBe(true);
    const again = await c.request({ type: 'send', topic: 'later.create', data: 0, idem: 'w-0' });
    expect(again).toMatchObject({ type: 'sent', duplicate: true });
    const inst = await startInstance('later', { DURABLE: '1', ACK_WAIT_MS: '2000' });
    await waitFor(() => handled([inst]).length >= 100, 20_000, 'queued sends handled');
    await new Promise((r) => setTimeout(r, 300));
    expect(
      handled([inst])
        .map((e) => e.idem)
        .sort(),
    ).toEqual(Array.from({ length: 100 }, (_, i) => `w-${i}`).sort());
  }, 60_000);

  it('durable: the queue of a service with no instance is bounded; beyond it sends are refused, retryable', async () => {
    const c = await client(nodes[0]!, 'flooder');
    for (let i = 0; i < 5; i++)
      expect(await c.request({ type: 'send', topic: 'tiny.create', data: i, idem: `t-${i}` })).toMatchObject({ type: 'sent', durable: true });
    const full = await c.request({ type: 'send', topic: 'tiny.create', data: 5, idem: 't-5' });
    expect(full).toMatchObject({ type: 'error', code: 'unavailable', retryable: true });
    expect(full.message).toMatch(/queue of service tiny is full/);
  });

  it('durable: a throwing handler is redelivered up to the limit, then dead-lettered with the error', async () => {
    const dead: Record<string, unknown>[] = [];
    const sub = nc.subscribe('sbdlq.ledger.>', {
      callback: (_e, m) => {
        dead.push({ subject: m.subject, ...(m.json() as object) });
      },
    });
    await nc.flush();
    const inst = await startInstance('ledger', { DURABLE: '1', ACK_WAIT_MS: '2000', MAX_DELIVER: '3' });
    const c = await client(nodes[2]!, 'failer');
    expect(await c.request({ type: 'send', topic: 'ledger.fail', data: 'x', idem: 'doomed-1' })).toMatchObject({ type: 'sent', durable: true });
    await waitFor(() => dead.length >= 1, 20_000, 'dead letter');
    const attempts = inst.events.filter((e) => e.ev === 'failed' && e.idem === 'doomed-1');
    expect(attempts.map((e) => e.deliveries)).toEqual([1, 2, 3]);
    expect(dead[0]).toMatchObject({ subject: 'sbdlq.ledger.fail', error: 'cannot handle doomed-1', deliveries: 3 });
    expect((dead[0]!.request as Record<string, unknown>).user).toBe('failer');
    sub.unsubscribe();
    await inst.kill();
  }, 40_000);

  it('durable: a handler that never settles times out: redelivered, then dead-lettered, and its slot is freed', async () => {
    const dead: Record<string, unknown>[] = [];
    const sub = nc.subscribe('sbdlq.poison.>', {
      callback: (_e, m) => {
        dead.push({ subject: m.subject, ...(m.json() as object) });
      },
    });
    await nc.flush();
    // One handler slot: the hung handler must give it back for the next message to run at all.
    const inst = await startInstance('poison', { DURABLE: '1', ACK_WAIT_MS: '3000', MAX_DELIVER: '2', HANDLER_TIMEOUT_MS: '700', CONCURRENCY: '1' });
    const c = await client(nodes[1]!, 'hanger');
    expect(await c.request({ type: 'send', topic: 'poison.hang', data: 'x', idem: 'hang-1' })).toMatchObject({ type: 'sent', durable: true });
    await waitFor(() => dead.length >= 1, 20_000, 'dead letter of the hung message');
    expect(inst.events.filter((e) => e.ev === 'hanging').map((e) => [e.idem, e.deliveries])).toEqual([
      ['hang-1', 1],
      ['hang-1', 2],
    ]);
    expect(dead[0]).toMatchObject({ subject: 'sbdlq.poison.hang', error: 'handler did not finish within 700 ms', deliveries: 2 });
    expect(await c.request({ type: 'send', topic: 'poison.create', data: 'after', idem: 'after-hang' })).toMatchObject({ type: 'sent', durable: true });
    await waitFor(() => handled([inst]).some((e) => e.idem === 'after-hang'), 20_000, 'the next message handled in the freed slot');
    sub.unsubscribe();
    await inst.kill();
  }, 60_000);

  it('durable: a message whose instances die while handling it is dead-lettered after maxDeliver deliveries, without running it again', async () => {
    const dead: Record<string, unknown>[] = [];
    const sub = nc.subscribe('sbdlq.poison.>', {
      callback: (_e, m) => {
        dead.push({ subject: m.subject, ...(m.json() as object) });
      },
    });
    await nc.flush();
    const env = { DURABLE: '1', ACK_WAIT_MS: '1000', MAX_DELIVER: '2' };
    const c = await client(nodes[0]!, 'poisoner');
    // Queued while no instance runs; every instance that takes it dies in the handler, without an answer.
    expect(await c.request({ type: 'send', topic: 'poison.crash', data: 'x', idem: 'poison-1' })).toMatchObject({ type: 'sent', durable: true });
    const crashed: Record<string, unknown>[] = [];
    for (let i = 0; i < 2; i++) {
      const inst = await startInstance('poison', env, true);
      await waitFor(() => inst.child.signalCode !== null || inst.child.exitCode !== null, 20_000, `instance ${i + 1} taking the message down with it`);
      crashed.push(...inst.events.filter((e) => e.ev === 'crashing'));
    }
    expect(crashed.map((e) => [e.idem, e.deliveries])).toEqual([
      ['poison-1', 1],
      ['poison-1', 2],
    ]);
    // The third instance gets delivery 3 > maxDeliver: dead-lettered with the reason, the handler not run.
    const survivor = await startInstance('poison', env);
    await waitFor(() => dead.length >= 1, 20_000, 'dead letter');
    expect(dead[0]).toMatchObject({ subject: 'sbdlq.poison.crash', error: 'delivered 2 times without an answer', deliveries: 2 });
    expect((dead[0]!.request as Record<string, unknown>).user).toBe('poisoner');
    expect(survivor.events.filter((e) => e.ev === 'crashing')).toEqual([]);
    expect(survivor.child.exitCode === null && survivor.child.signalCode === null).toBe(true);
    sub.unsubscribe();
    await survivor.kill();
  }, 60_000);
});

describe('rpc', () => {
  it('answers across nodes, fails typed on timeout, no service and handler errors', async () => {
    await startInstance('calc');
    const cs = await Promise.all(nodes.map((n, i) => client(n, `caller-${i}`)));
    for (const [i, c] of cs.entries()) {
      const r = await c.request({ type: 'rpc', topic: 'calc.echo', data: { i } });
      expect(r).toMatchObject({ type: 'rpc.result', topic: 'calc.echo', data: { echo: { i }, user: `caller-${i}`, node: `node-${i + 1}` } });
    }
    const t0 = Date.now();
    const slow = await cs[0]!.request({ type: 'rpc', topic: 'calc.slow', data: { ms: 10_000 }, timeoutMs: 300 });
    expect(slow).toMatchObject({ type: 'error', code: 'rpc_timeout', retryable: true });
    expect(Date.now() - t0).toBeLessThan(9_000); // the error came from the timeout, not after the handler
    expect(await cs[1]!.request({ type: 'rpc', topic: 'nobody.echo', data: 1 })).toMatchObject({ type: 'error', code: 'no_service' });
    expect(await cs[1]!.request({ type: 'rpc', topic: 'calc.missing', data: 1 })).toMatchObject({ type: 'error', code: 'service_error' });
    // The connection is still usable after the errors.
    expect(await cs[0]!.request({ type: 'rpc', topic: 'calc.echo', data: 'again' })).toMatchObject({ type: 'rpc.result' });
  }, 30_000);
});

describe('client SDK send and rpc', () => {
  it('client.send reaches one instance with a stable idem; client.rpc answers and fails typed', async () => {
    await startInstance('sdkcalc');
    const c = connectClient(nodes[1]!.wsUrl, {
      WebSocket,
      token: await token('sdk-user', { services: { send: ['sdkcalc.*'], rpc: ['sdkcalc.*', 'nobody.*'] } }),
    });
    try {
      const sent = await c.send('sdkcalc.create', { n: 1 }, { idem: 'sdk-1' });
      expect(sent).toEqual({ topic: 'sdkcalc.create', idem: 'sdk-1', durable: false, duplicate: false });
      const auto = await c.send('sdkcalc.create', { n: 2 });
      expect(auto.idem).toMatch(/^[0-9a-f-]{36}$/);
      const mine = (): unknown[] =>
        handled(instances, 'create')
          .filter((e) => e.idem === 'sdk-1' || e.idem === auto.idem)
          .map((e) => e.idem);
      await waitFor(() => mine().length >= 2, 10_000, 'both sends handled');
      expect(mine().sort()).toEqual(['sdk-1', auto.idem].sort());
      expect(await c.rpc('sdkcalc.echo', { x: 1 })).toMatchObject({ echo: { x: 1 }, user: 'sdk-user', node: 'node-2' });
      await expect(c.rpc('nobody.echo', 1)).rejects.toMatchObject({ code: 'no_service' });
      await expect(c.rpc('sdkcalc.slow', { ms: 10_000 }, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'rpc_timeout' });
      await expect(c.send('other.create', 1)).rejects.toMatchObject({ code: 'forbidden' });
    } finally {
      c.close();
    }
  }, 30_000);
});

describe('backend SDK publish and presence', () => {
  let svc: Service;
  afterAll(async () => svc?.close());

  it('publishToRoom reaches room members on every node like POST /api/publish; presence matches HTTP', async () => {
    svc = await service('notifier', { nats: nc });
    const members = await Promise.all(nodes.map((n, i) => client(n, `reader-${i}`)));
    for (const m of members) expect(await m.request({ type: 'join', room: 'feed' })).toMatchObject({ type: 'joined' });
    const viaNats = await svc.publishToRoom('feed', { via: 'nats' }, { from: 'billing', idem: 'feed-1' });
    const res = await fetch(`${nodes[1]!.url}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'feed', from: 'billing', data: { via: 'http' } }),
    });
    const viaHttp = (await res.json()) as Record<string, unknown>;
    expect(viaHttp.seq).toBe(viaNats.seq + 1);
    expect(Object.keys(viaNats).sort()).toEqual(Object.keys(viaHttp).sort());
    expect((await svc.publishToRoom('feed', { via: 'nats' }, { from: 'billing', idem: 'feed-1' })).duplicate).toBe(true);
    for (const m of members) {
      const got = await m.waitForMessages('feed', 2);
      expect(got.map((f) => [f.seq, f.from, f.data])).toEqual([
        [viaNats.seq, 'billing', { via: 'nats' }],
        [viaNats.seq + 1, 'billing', { via: 'http' }],
      ]);
    }
    const direct = members[2]!.waitFor((f) => f.type === 'direct', 10_000);
    await svc.publishToUser('reader-2', { hi: 1 });
    expect(await direct).toMatchObject({ type: 'direct', from: 'server', data: { hi: 1 } });
    const p = await svc.presence('feed');
    const httpP = (await (await fetch(`${nodes[0]!.url}/api/rooms/feed/presence`)).json()) as { members: { user: string }[] };
    expect(p.members.map((m) => m.user).sort()).toEqual(httpP.members.map((m) => m.user).sort());
    expect(p.members.map((m) => m.user).sort()).toEqual(['reader-0', 'reader-1', 'reader-2']);
    await expect(svc.publishToRoom('bad room!', 1)).rejects.toMatchObject({ code: 'bad_room' });
  }, 30_000);

  it('an instance started by the test triggers publishToRoom from inside a handler (rpc)', async () => {
    await startInstance('announcer');
    const m = await client(nodes[0]!, 'watcher');
    await m.request({ type: 'join', room: 'news' });
    const c = await client(nodes[2]!, 'trigger');
    const r = await c.request({ type: 'rpc', topic: 'announcer.announce', data: { room: 'news', payload: 'extra' } });
    expect(r).toMatchObject({ type: 'rpc.result', data: { room: 'news', duplicate: false } });
    const [msg] = await m.waitForMessages('news', 1);
    expect(msg).toMatchObject({ from: 'svc', data: 'extra', seq: (r.data as { seq: number }).seq });
  }, 30_000);
});

describe('one request edge', () => {
  /** switchboard_errors_total{code} summed over the cluster (a NATS API request may land on any node). */
  async function errorsTotal(code: string): Promise<number> {
    let sum = 0;
    for (const n of nodes.slice(0, 3)) {
      const text = await (await fetch(`${n.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('switchboard_errors_total{') && l.includes(`code="${code}"`));
      sum += line === undefined ? 0 : Number(line.split(' ').pop());
    }
    return sum;
  }

  async function viaNats(body: unknown): Promise<{ ok: boolean; code?: string }> {
    const reply = await nc.request(API_PUBLISH, new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000 });
    return JSON.parse(new TextDecoder().decode(reply.data)) as { ok: boolean; code?: string };
  }

  async function viaHttp(body: unknown): Promise<{ status: number; code: string }> {
    const res = await fetch(`${nodes[1]!.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as { error: { code: string } };
    return { status: res.status, code: json.error.code };
  }

  it.each([
    ['a bad room name', { room: 'a b', data: 1 }, 'bad_room'],
    ['an idempotency id over 128 characters', { room: 'edge-ok', data: 1, idem: 'x'.repeat(200) }, 'bad_request'],
    ['an event name with a space', { room: 'edge-ok', data: 1, event: 'has space' }, 'bad_request'],
  ])(
    '%s gets the same code over WebSocket, HTTP and NATS, and each moves switchboard_errors_total once',
    async (_what, body, code) => {
      const c = await client(nodes[0]!, 'edge-user');
      if (body.room === 'edge-ok') await c.request({ type: 'join', room: 'edge-ok' });
      let before = await errorsTotal(code);
      expect(await c.request({ type: 'publish', ...body })).toMatchObject({ type: 'error', code });
      expect(await errorsTotal(code)).toBe(before + 1);
      before = await errorsTotal(code);
      const http = await viaHttp(body);
      expect(http).toEqual({ status: 400, code });
      expect(await errorsTotal(code)).toBe(before + 1);
      before = await errorsTotal(code);
      expect(await viaNats(body)).toMatchObject({ ok: false, code });
      expect(await errorsTotal(code)).toBe(before + 1);
      c.close();
    },
    30_000,
  );
});

describe('embedded mode', () => {
  it('send and rpc answer services_disabled', async () => {
    const n = await startNodeProcess();
    nodes.push(n);
    const c = await client(n, 'solo');
    expect(await c.request({ type: 'send', topic: 'orders.create', data: 1 })).toMatchObject({ type: 'error', code: 'services_disabled', retryable: false });
    expect(await c.request({ type: 'rpc', topic: 'orders.echo', data: 1 })).toMatchObject({ type: 'error', code: 'services_disabled' });
  }, 30_000);
});
