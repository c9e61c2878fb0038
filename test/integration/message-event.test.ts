/**
 * The optional `event` name of room messages through one real node process (dev mode, embedded engines) and
 * real WebSocket clients: a v1 publish with an event is delivered with it, is in history with it (WebSocket and
 * HTTP) and is recovered with it; a message without one has no `event` key on the wire; bad event names are
 * `bad_request` on every transport, counted in switchboard_errors_total.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

let node: NodeProcess;
const clients: TestClient[] = [];

async function client(user: string): Promise<TestClient> {
  const c = await TestClient.connect(node.wsUrl, { user });
  clients.push(c);
  return c;
}

/** Every text frame a client receives, as sent (to check bytes, not parsed objects). */
function rawTexts(c: TestClient): string[] {
  const texts: string[] = [];
  c.ws.on('message', (data: Buffer) => texts.push(data.toString('utf8')));
  return texts;
}

async function httpPublish(body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${node.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function badRequests(): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('switchboard_errors_total{') && l.includes('code="bad_request"'));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

const EVENT = 'App\\Events\\OrderShipped';

beforeAll(async () => {
  node = await startNodeProcess();
});

afterAll(async () => {
  for (const c of clients) c.close();
  expect(await node.stop()).toBe(0);
});

describe('room message events', () => {
  it('a publish with an event is delivered, in history and recovered with it; one without has no event key', async () => {
    const room = 'private-orders.7';
    const pub = await client('ev-pub');
    const sub = await client('ev-sub');
    const raw = rawTexts(sub);
    for (const c of [pub, sub]) expect((await c.request({ type: 'join', room })).type).toBe('joined');
    expect(await pub.request({ type: 'publish', room, data: { id: 7 }, event: EVENT })).toMatchObject({ type: 'ack', seq: 1 });
    expect(await pub.request({ type: 'publish', room, data: 'plain' })).toMatchObject({ type: 'ack', seq: 2 });
    const live = await sub.waitForMessages(room, 2);
    expect(live.map((m) => [m.seq, m.event, m.data])).toEqual([
      [1, EVENT, { id: 7 }],
      [2, undefined, 'plain'],
    ]);
    // On the wire: event between ts and data; no key at all (not null) without one.
    const texts = raw.filter((t) => t.startsWith('{"type":"message"'));
    expect(texts[0]).toBe(
      `{"type":"message","room":"${room}","seq":1,"epoch":"${live[0]!.epoch as string}","from":"ev-pub","ts":${live[0]!.ts as number},"event":${JSON.stringify(EVENT)},"data":{"id":7}}`,
    );
    expect(texts[1]).toBe(
      `{"type":"message","room":"${room}","seq":2,"epoch":"${live[1]!.epoch as string}","from":"ev-pub","ts":${live[1]!.ts as number},"data":"plain"}`,
    );

    // HTTP publish with an event, delivered with it.
    const http = await httpPublish({ room, event: 'order-cancelled', data: { id: 8 } });
    expect(http).toMatchObject({ status: 200, json: { seq: 3, duplicate: false } });
    expect((await sub.waitForMessages(room, 3))[2]).toMatchObject({ seq: 3, from: 'server', event: 'order-cancelled', data: { id: 8 } });

    // History over WebSocket and HTTP.
    const page = await sub.request({ type: 'history', room, limit: 10 });
    const pageMessages = page.messages as Frame[];
    expect(pageMessages.map((m) => [m.seq, m.event])).toEqual([
      [1, EVENT],
      [2, undefined],
      [3, 'order-cancelled'],
    ]);
    expect(Object.keys(pageMessages[1]!)).not.toContain('event');
    const res = await fetch(`${node.url}/api/rooms/${encodeURIComponent(room)}/history`);
    const body = (await res.json()) as { messages: Frame[] };
    expect(body.messages.map((m) => m.event)).toEqual([EVENT, undefined, 'order-cancelled']);
    expect(Object.keys(body.messages[1]!)).not.toContain('event');

    // Recovery: away, then back with since.
    const last = live[1]!;
    sub.close();
    await pub.request({ type: 'publish', room, data: 4, event: 'client-typing' });
    await pub.request({ type: 'publish', room, data: 5 });
    const back = await client('ev-sub');
    const joined = await back.request({ type: 'join', room, since: { seq: last.seq, epoch: last.epoch } });
    expect(joined).toMatchObject({ recovery: 'recovered', missed: 3 });
    const recovered = await back.waitForMessages(room, 3);
    expect(recovered.map((m) => [m.seq, m.event])).toEqual([
      [3, 'order-cancelled'],
      [4, 'client-typing'],
      [5, undefined],
    ]);
    expect(Object.keys(recovered[2]!)).not.toContain('event');
  });

  it('a repeated idem is acked as a duplicate and keeps the first message event', async () => {
    const room = 'ev-idem';
    const c = await client('ev-idem');
    await c.request({ type: 'join', room });
    const first = await c.request({ type: 'publish', room, data: 1, event: 'first', idem: 'k1' });
    const again = await c.request({ type: 'publish', room, data: 2, event: 'second', idem: 'k1' });
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    const page = await c.request({ type: 'history', room });
    expect((page.messages as Frame[]).map((m) => [m.seq, m.event, m.data])).toEqual([[1, 'first', 1]]);
  });

  it('bad event names are bad_request (over 256 characters bad_frame) on WebSocket, HTTP, and counted', async () => {
    const room = 'ev-bad';
    const c = await client('ev-bad');
    await c.request({ type: 'join', room });
    const before = await badRequests();
    const bad = ['', 'has space', 'e'.repeat(201), 'ünïcode', 'tab\t'];
    for (const event of bad) {
      const reply = await c.request({ type: 'publish', room, data: 1, event });
      expect(reply).toMatchObject({ type: 'error', code: 'bad_request', room });
      expect(reply.message).toMatch(/^event: 1–200 printable ASCII/);
    }
    expect(await c.request({ type: 'publish', room, data: 1, event: 'e'.repeat(257) })).toMatchObject({ type: 'error', code: 'bad_frame' });
    expect(await c.request({ type: 'publish', room, data: 1, event: 42 })).toMatchObject({ type: 'error', code: 'bad_frame' });
    const http = await httpPublish({ room, event: 'has space', data: 1 });
    expect(http).toMatchObject({ status: 400, json: { error: { code: 'bad_request' } } });
    const direct = await httpPublish({ user: 'someone', event: 'ok-event', data: 1 });
    expect(direct).toMatchObject({ status: 400, json: { error: { code: 'bad_request' } } });
    expect(await badRequests()).toBe(before + bad.length + 2);
    // Nothing was stored.
    const page = await c.request({ type: 'history', room });
    expect(page.messages).toEqual([]);
  });
});
