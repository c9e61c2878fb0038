/**
 * Overload protection: slow consumers are cut at a bounded buffer with a distinct close code; upgrades
 * beyond the admission rate or the connection ceiling get 503 with a jittered Retry-After.
 */
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { openRawWs } from '../helpers/raw-ws.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

const started: NodeProcess[] = [];
afterEach(async () => {
  for (const n of started.splice(0)) await n.kill();
});

async function metric(n: NodeProcess, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${n.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

function upgrade(port: number): Promise<{ status: number; retryAfter?: string; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string }));
    ws.on('error', () => undefined);
  });
}

describe('slow consumers', () => {
  it('a client that stops reading is cut with 4003 at the buffer bound; others keep receiving', async () => {
    const n = await startNodeProcess({ args: ['--slow-consumer-bytes', '262144', '--slow-consumer-ms', '500'] });
    started.push(n);
    const slow = await openRawWs(n.port);
    slow.sendText(JSON.stringify({ type: 'connect', user: 'slow' }));
    slow.sendText(JSON.stringify({ type: 'join', id: 1, room: 'flood' }));
    const fast = await TestClient.connect(n.wsUrl, { user: 'fast' });
    await fast.request({ type: 'join', room: 'flood' });
    // the slow client is a member before it stops reading
    await waitFor(
      async () => {
        const list = await fast.request({ type: 'presence', room: 'flood' });
        return (list.members as { user: string; online: boolean }[]).some((m) => m.user === 'slow' && m.online);
      },
      10_000,
      'slow client joined',
    );
    slow.pause();
    const payload = 'x'.repeat(16_000);
    const N = 1500; // ~24 MB: well past loopback socket buffers plus the 256 KiB bound
    for (let i = 0; i < N; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, N - i) }, () => fast.request({ type: 'publish', room: 'flood', data: payload })));
    }
    await fast.waitForMessages('flood', N, 30_000);
    // cut once its unsent output stayed over the soft bound for the grace period (checked by the sweep)
    await waitFor(async () => (await metric(n, 'switchboard_slow_consumer_disconnects_total')) === 1, 15_000, 'slow consumer cut');
    // the socket closes after the close frame or the 1 s cut-off; then it is counted under its close code
    await waitFor(async () => (await metric(n, 'switchboard_disconnects_total', 'code="4003"')) === 1, 10_000, 'disconnect counted as 4003');
    // the server's memory for the slow client is bounded: far less than what was published was sent to it
    expect(slow.received()).toBeLessThan(N * 16_000);
    expect(fast.closed).toBeNull();
    fast.close();
  }, 60_000);
});

describe('slow consumers learn why', () => {
  it('a client that stops reading, is cut, and reads again later gets its close frame: 4003, not 1006', async () => {
    const n = await startNodeProcess({ args: ['--slow-consumer-bytes', '262144', '--slow-consumer-ms', '500'], startTimeoutMs: 100_000 });
    started.push(n);
    const slow = await openRawWs(n.port);
    slow.sendText(JSON.stringify({ type: 'connect', user: 'slow' }));
    slow.sendText(JSON.stringify({ type: 'join', id: 1, room: 'flood' }));
    const fast = await TestClient.connect(n.wsUrl, { user: 'fast' });
    await fast.request({ type: 'join', room: 'flood' });
    await waitFor(
      async () => {
        const list = await fast.request({ type: 'presence', room: 'flood' });
        return (list.members as { user: string; online: boolean }[]).some((m) => m.user === 'slow' && m.online);
      },
      10_000,
      'slow client joined',
    );
    slow.pause();
    const payload = 'x'.repeat(16_000);
    // Publish until the node cuts the slow client: megabytes queued for it by then.
    let published = 0;
    await waitFor(
      async () => {
        if ((await metric(n, 'switchboard_slow_consumer_disconnects_total')) === 1) return true;
        await Promise.all(Array.from({ length: 50 }, () => fast.request({ type: 'publish', room: 'flood', data: payload })));
        published += 50;
        return false;
      },
      60_000,
      'slow consumer cut',
      0,
    );
    expect(published * 16_000).toBeGreaterThan(4 << 20);
    // The client reads again well after the node's old 1 s cut-off (a lower bound, not a wait for a state).
    await sleep(1_500);
    slow.resume();
    await Promise.race([waitFor(() => slow.closeFrame() !== null, 20_000, 'the close frame'), slow.closed]);
    expect(slow.closeFrame()).toMatchObject({ code: 4003, reason: 'slow consumer' });
    // what it read before the close is old data from its socket buffers, far less than was published
    expect(slow.received()).toBeLessThan(published * 16_000);
    await waitFor(async () => (await metric(n, 'switchboard_disconnects_total', 'code="4003"')) === 1, 10_000, 'disconnect counted as 4003');
    expect(fast.closed).toBeNull();
    fast.close();
  }, 120_000);
});

describe('admission control', () => {
  it('admits at the configured rate and refuses the excess with 503 and a jittered Retry-After', async () => {
    const rate = 5;
    const burst = 5;
    const n = await startNodeProcess({
      args: ['--admission-rate', String(rate), '--admission-burst', String(burst), '--retry-after-min-s', '2', '--retry-after-max-s', '9'],
    });
    started.push(n);
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 40 }, () => upgrade(n.port)));
    const elapsedS = (Date.now() - t0) / 1000;
    const admitted = results.filter((r) => r.status === 101);
    const refused = results.filter((r) => r.status === 503);
    expect(admitted.length).toBeGreaterThanOrEqual(burst);
    // The server saw every upgrade within these elapsedS seconds: at most the burst plus what the rate
    // refilled meanwhile (+1 for a token refilled at the edge), however slowly the machine ran.
    expect(admitted.length).toBeLessThanOrEqual(Math.floor(burst + rate * elapsedS) + 1);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBe(40 - admitted.length);
    const delays = refused.map((r) => Number(r.retryAfter));
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(2);
      expect(d).toBeLessThanOrEqual(9);
    }
    expect(new Set(delays).size).toBeGreaterThan(1);
    expect(await metric(n, 'switchboard_admission_total', 'result="admitted"')).toBe(admitted.length);
    expect(await metric(n, 'switchboard_admission_total', 'result="refused_rate"')).toBe(refused.length);
    for (const r of admitted) r.ws!.close();
  });

  it('refuses upgrades beyond --max-connections', async () => {
    const n = await startNodeProcess({ args: ['--max-connections', '3'] });
    started.push(n);
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await upgrade(n.port));
    expect(open.map((r) => r.status)).toEqual([101, 101, 101]);
    const fourth = await upgrade(n.port);
    expect(fourth.status).toBe(503);
    expect(await metric(n, 'switchboard_admission_total', 'result="refused_max"')).toBe(1);
    expect(await metric(n, 'switchboard_connections')).toBe(3);
    for (const r of open) r.ws!.close();
  });
});

describe('bounded recovery', () => {
  it('a recovery larger than half the output bound answers reset instead of cutting the client', async () => {
    const n = await startNodeProcess({ args: ['--max-buffered-bytes', '200000'] });
    started.push(n);
    const pub = await TestClient.connect(n.wsUrl, { user: 'pub' });
    await pub.request({ type: 'join', room: 'big' });
    const first = await pub.request({ type: 'publish', room: 'big', data: 'x' });
    const big = 'y'.repeat(8000);
    for (let i = 0; i < 30; i++) await pub.request({ type: 'publish', room: 'big', data: big }); // ~240 KB missed
    const late = await TestClient.connect(n.wsUrl, { user: 'late' });
    const joined = await late.request({ type: 'join', room: 'big', since: { seq: first.seq, epoch: first.epoch } });
    expect(joined).toMatchObject({ recovery: 'reset', missed: 0, seq: 31 });
    const small = await TestClient.connect(n.wsUrl, { user: 'small' });
    const ok = await small.request({ type: 'join', room: 'big', since: { seq: 25, epoch: first.epoch } });
    expect(ok).toMatchObject({ recovery: 'recovered', missed: 6 });
    expect(late.closed).toBeNull();
    expect(await metric(n, 'switchboard_recoveries_total', 'result="reset_size"')).toBe(1);
    for (const c of [pub, late, small]) c.close();
  });
});

describe('per-connection publish rate', () => {
  it('publishes beyond publishRatePerConnection get rate_limited (retryable), counted; the connection stays and may publish again; another connection is not limited by it', async () => {
    const n = await startNodeProcess({ args: ['--publish-rate-per-connection', '5'] });
    started.push(n);
    const busy = await TestClient.connect(n.wsUrl, { user: 'busy' });
    const calm = await TestClient.connect(n.wsUrl, { user: 'calm' });
    for (const c of [busy, calm]) await c.request({ type: 'join', room: 'rated' });
    const before = await metric(n, 'switchboard_errors_total', 'code="rate_limited"');
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => busy.request({ type: 'publish', room: 'rated', data: { i } })));
    const acked = replies.filter((r) => r.type === 'ack');
    const refused = replies.filter((r) => r.type === 'error');
    // A bucket of one second's worth: 5 at once, and a few more only if refilled while the 20 were read (a stalled loop).
    expect(acked.length).toBeGreaterThanOrEqual(5);
    expect(acked.length).toBeLessThanOrEqual(10);
    expect(refused.length).toBe(20 - acked.length);
    for (const r of refused) expect(r).toMatchObject({ code: 'rate_limited', retryable: true, room: 'rated' });
    expect(await metric(n, 'switchboard_errors_total', 'code="rate_limited"')).toBe(before + refused.length);
    // The other connection has its own bucket.
    expect(await calm.request({ type: 'publish', room: 'rated', data: 'calm' })).toMatchObject({ type: 'ack' });
    // The bucket refills: the busy connection publishes again once a token is back.
    await waitFor(async () => (await busy.request({ type: 'publish', room: 'rated', data: 'again' })).type === 'ack', 5_000, 'a refilled token', 100);
    expect(busy.closed).toBeNull();
    busy.close();
    calm.close();
  });
});
