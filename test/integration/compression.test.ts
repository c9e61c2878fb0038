/**
 * Compression (permessage-deflate, docs/protocol.md §2.8) and batch frames (§2.7) against real node processes,
 * with real clients on real sockets: `ws` with and without permessage-deflate, raw sockets that read the frames'
 * bytes and RSV1 (and inflate them with zlib), Chromium's own WebSocket, and the client SDK. Every member of a
 * room must read the same frames in the same order whether it got them compressed, batched or neither; the node
 * compresses each message once, not once per member; `--compression false` negotiates nothing.
 */
import { existsSync } from 'node:fs';
import { constants, inflateRawSync } from 'node:zlib';
import { chromium, type Browser, type Page } from 'playwright-core';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdk, type Recorded } from '../client/real-helpers.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { parsePrometheusText } from '../helpers/prom-text.js';
import { openRawWs, type RawWs } from '../helpers/raw-ws.js';
import { waitFor } from '../helpers/wait.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`Chromium tests skipped: no Chromium at ${CHROMIUM} (scripts/install-system-deps.sh installs Debian's chromium)`);

type Frame = Record<string, unknown> & { type: string };
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const OFFER = 'permessage-deflate; client_max_window_bits';
/** A permessage-deflate message's payload inflated (RFC 7692 §7.2.2: the tail put back, no final block). */
const inflate = (payload: Buffer): Buffer => inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: constants.Z_SYNC_FLUSH });

let node: NodeProcess;
let plainNode: NodeProcess;
let browser: Browser | null = null;
const sockets: { close(): void }[] = [];

beforeAll(async () => {
  // Default threshold (1024 bytes of JSON) on the first node; compression off on the second.
  [node, plainNode] = await Promise.all([
    startNodeProcess({ dataDir: 'memory://compression' }),
    startNodeProcess({ dataDir: 'memory://plain', args: ['--compression', 'false'] }),
  ]);
  if (HAVE_CHROMIUM) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-gpu'],
    });
  }
}, 120_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  await browser?.close();
  await Promise.all([node?.kill(), plainNode?.kill()]);
});

/** A `ws` member: with or without permessage-deflate, with or without batch frames (lines are split only then). */
interface WsMember {
  readonly ws: WebSocket;
  readonly frames: Frame[];
  /** WebSocket messages received (a batch frame is one). */
  messages: number;
}

async function wsMember(url: string, room: string, opts: { deflate: boolean; batch: boolean; since?: { seq: number; epoch: string } }): Promise<WsMember> {
  const ws = new WebSocket(url, { perMessageDeflate: opts.deflate });
  sockets.push({ close: () => ws.terminate() });
  const m: WsMember = { ws, frames: [], messages: 0 };
  ws.on('message', (data: Buffer) => {
    m.messages++;
    const text = data.toString('utf8');
    // A member that did not opt in must never get a batch: parsing the whole message as one JSON checks it.
    for (const line of opts.batch ? text.split('\n') : [text]) {
      const f = JSON.parse(line) as Frame;
      if (f.type === 'ping') ws.send('{"type":"pong"}');
      m.frames.push(f);
    }
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ type: 'connect', id: 'c', batch: opts.batch }));
  ws.send(JSON.stringify({ type: 'join', id: 'j', room, ...(opts.since !== undefined ? { since: opts.since } : {}) }));
  await waitFor(() => m.frames.some((f) => f.type === 'joined' && f.id === 'j'), 10_000, `${room} joined`);
  return m;
}

/** A raw member that negotiates permessage-deflate (unless `offer` is null) and inflates what it reads itself. */
interface RawMember {
  readonly raw: RawWs;
  /** The frames' JSON, lines of batch frames split. */
  frames(): Frame[];
  /** The `message` frames of an unbatched member as they came: RSV1, the payload's bytes and its JSON. */
  wire(): { rsv1: boolean; payload: Buffer; frame: Frame }[];
}

async function rawMember(
  port: number,
  room: string,
  opts: { offer: string | null; batch: boolean; since?: { seq: number; epoch: string } },
): Promise<RawMember> {
  const raw = await openRawWs(port, '/ws', { keepFrames: true, ...(opts.offer !== null ? { headers: { 'Sec-WebSocket-Extensions': opts.offer } } : {}) });
  sockets.push({ close: () => raw.socket.destroy() });
  const text = (f: RawWs['frames'][number]): string => (f.rsv1 ? inflate(f.payload) : f.payload).toString('utf8');
  const frames = (): Frame[] =>
    raw.frames
      .map(text)
      .flatMap((t) => (opts.batch ? t.split('\n') : [t]))
      .map((line) => JSON.parse(line) as Frame);
  const wire = (): { rsv1: boolean; payload: Buffer; frame: Frame }[] =>
    raw.frames.map((f) => ({ ...f, frame: JSON.parse(text(f)) as Frame })).filter((f) => f.frame.type === 'message');
  raw.sendText(JSON.stringify({ type: 'connect', id: 'c', batch: opts.batch }));
  raw.sendText(JSON.stringify({ type: 'join', id: 'j', room, ...(opts.since !== undefined ? { since: opts.since } : {}) }));
  await waitFor(() => frames().some((f) => f.type === 'joined'), 10_000, `${room} joined (raw)`);
  return { raw, frames, wire };
}

/** What the test uses of the browser's WebSocket. */
interface BrowserSocket {
  readonly extensions: string;
  send(data: string): void;
  onmessage: ((e: { data: string }) => void) | null;
  onopen: (() => void) | null;
}

/** A Chromium tab's own WebSocket to `url` (permessage-deflate is Chromium's), joined to `room`, splitting batch frames. */
async function chromiumMember(url: string, room: string): Promise<Page> {
  const page = await browser!.newPage();
  await page.goto(`${node.url}/healthz`); // any page of the node's origin
  await page.evaluate(
    ({ url, room }) => {
      const w = globalThis as unknown as { got: unknown[]; events: number; sock: BrowserSocket; WebSocket: new (url: string) => BrowserSocket };
      w.got = [];
      w.events = 0;
      const ws = new w.WebSocket(url); // the browser's own
      w.sock = ws;
      ws.onmessage = (e) => {
        w.events++;
        for (const line of e.data.split('\n')) {
          const f = JSON.parse(line) as { type: string };
          if (f.type === 'ping') ws.send('{"type":"pong"}');
          w.got.push(f);
        }
      };
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: 'connect', id: 'c', user: 'chromium', batch: true }));
        ws.send(JSON.stringify({ type: 'join', id: 'j', room }));
      };
    },
    { url, room },
  );
  await waitFor(async () => (await browserFrames(page)).some((f) => f.type === 'joined'), 20_000, 'chromium joined', 50);
  return page;
}

const browserFrames = (page: Page): Promise<Frame[]> => page.evaluate(() => (globalThis as unknown as { got: Frame[] }).got);

const messagesOf = (frames: readonly Frame[], room: string): Frame[] => frames.filter((f) => f.type === 'message' && f.room === room);

async function metric(n: NodeProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${n.url}/metrics`)).text();
  const family = parsePrometheusText(text).get(name);
  const sample = family?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return sample?.value ?? 0;
}

async function publish(n: NodeProcess, room: string, data: unknown): Promise<void> {
  const res = await fetch(`${n.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room, data }) });
  expect(res.status).toBe(200);
}

/** Payloads around the threshold: small ones (< 1024 bytes of JSON), and large ones that compress (> 3 KB). */
function payload(i: number): unknown {
  if (i % 2 === 0) return { i, text: `small message ${i}` };
  return { i, items: Array.from({ length: 60 }, (_, k) => ({ id: k, name: `item ${i}-${k}`, price: k * 1.25, tags: ['red', 'green', 'blue'] })) };
}

describe('compression: one compressed copy per message, the same data for every member', () => {
  it('ws with and without permessage-deflate and raw sockets read identical frames; RSV1 above the threshold only; compressed once per message', async () => {
    const room = 'deflate-1';
    const plain = await wsMember(node.wsUrl, room, { deflate: false, batch: false });
    const deflate = await wsMember(node.wsUrl, room, { deflate: true, batch: false });
    const raw1 = await rawMember(node.port, room, { offer: OFFER, batch: false });
    const raw2 = await rawMember(node.port, room, { offer: OFFER, batch: false });
    // A client asking for a smaller server window gets the extension but plain frames (protocol.md §2.8).
    const smallWindow = await rawMember(node.port, room, { offer: `${OFFER}; server_max_window_bits=10`, batch: false });
    const noOffer = await rawMember(node.port, room, { offer: null, batch: false });
    expect(plain.ws.extensions).toBe('');
    expect(deflate.ws.extensions).toBe('permessage-deflate');
    expect(raw1.raw.handshake).toMatch(/^Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover$/m);
    expect(smallWindow.raw.handshake).toMatch(/^Sec-WebSocket-Extensions: permessage-deflate;.*server_max_window_bits=10/m);
    expect(noOffer.raw.handshake).not.toMatch(/Sec-WebSocket-Extensions/i);

    const compressedBefore = await metric(node, 'switchboard_messages_compressed_total');
    const n = 10;
    for (let i = 0; i < n; i++) await publish(node, room, payload(i));
    const everyone = (): Frame[][] => [plain.frames, deflate.frames, raw1.frames(), raw2.frames(), smallWindow.frames(), noOffer.frames()];
    await waitFor(() => everyone().every((fs) => messagesOf(fs, room).length === n), 15_000, `${n} messages at every member`);

    const reference = messagesOf(plain.frames, room);
    expect(reference.map((f) => f.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    for (const fs of everyone()) expect(messagesOf(fs, room)).toEqual(reference);

    // On the wire: the large messages compressed, the small ones not; byte-identical for two members (shared).
    const wire = (m: RawMember): { rsv1: boolean; payload: Buffer }[] => m.wire();
    const large = (i: number): boolean => i % 2 === 1;
    expect(wire(raw1).map((f) => f.rsv1)).toEqual(Array.from({ length: n }, (_, i) => large(i)));
    expect(wire(raw2).map((f) => f.payload)).toEqual(wire(raw1).map((f) => f.payload));
    for (const m of [smallWindow, noOffer]) expect(wire(m).some((f) => f.rsv1)).toBe(false);
    for (let i = 0; i < n; i++) {
      const json = Buffer.byteLength(JSON.stringify(reference[i]));
      if (large(i)) expect(wire(raw1)[i]!.payload.length).toBeLessThan(json / 3);
    }

    // Once per message, not once per member: three members got the compressed frames.
    expect(await metric(node, 'switchboard_messages_compressed_total')).toBe(compressedBefore + n / 2);
    expect(await metric(node, 'switchboard_deflate_connections')).toBeGreaterThanOrEqual(3);
    const json = await metric(node, 'switchboard_compression_bytes_total', { stage: 'json' });
    const sent = await metric(node, 'switchboard_compression_bytes_total', { stage: 'sent' });
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(json / 3);
  });

  it('--compression false: no extension is negotiated and nothing is compressed', async () => {
    const room = 'deflate-off';
    const ws = await wsMember(plainNode.wsUrl, room, { deflate: true, batch: false });
    const raw = await rawMember(plainNode.port, room, { offer: OFFER, batch: false });
    expect(ws.ws.extensions).toBe('');
    expect(raw.raw.handshake).not.toMatch(/Sec-WebSocket-Extensions/i);
    for (let i = 0; i < 4; i++) await publish(plainNode, room, payload(i));
    await waitFor(() => messagesOf(raw.frames(), room).length === 4 && messagesOf(ws.frames, room).length === 4, 10_000, 'messages on the plain node');
    expect(messagesOf(ws.frames, room)).toEqual(messagesOf(raw.frames(), room));
    expect(raw.raw.frames.some((f) => f.rsv1)).toBe(false);
    expect(await metric(plainNode, 'switchboard_messages_compressed_total')).toBe(0);
    expect(await metric(plainNode, 'switchboard_deflate_connections')).toBe(0);
  });
});

describe('batch frames: the same sequence as unbatched delivery', () => {
  it('a pipelined burst and a recovery, read by the SDK, ws and raw members with batches (compressed and not), equal what an unbatched member gets', async () => {
    const room = 'batch-1';
    const reference = await wsMember(node.wsUrl, room, { deflate: false, batch: false });
    const wsBatch = await wsMember(node.wsUrl, room, { deflate: true, batch: true });
    const rawBatch = await rawMember(node.port, room, { offer: OFFER, batch: true });
    const rawPlainBatch = await rawMember(node.port, room, { offer: null, batch: true });
    const client: Recorded = sdk(node.wsUrl, room);
    sockets.push({ close: () => client.client.close() });
    let joined = false;
    client.client.room(room).on('joined', () => (joined = true));
    await waitFor(() => joined, 10_000, 'SDK joined');
    const batchesBefore = await metric(node, 'switchboard_batch_frames_total');

    // One client publishes a burst in one write: the node queues many deliveries per event-loop turn.
    const n = 60;
    const publisher = await openRawWs(node.port, '/ws', { keepText: true });
    sockets.push({ close: () => publisher.socket.destroy() });
    publisher.sendTexts([
      JSON.stringify({ type: 'connect', id: 'c' }),
      JSON.stringify({ type: 'join', id: 'j', room }),
      ...Array.from({ length: n }, (_, i) => JSON.stringify({ type: 'publish', id: i, room, data: payload(i), idem: `burst-${i}` })),
    ]);
    await waitFor(() => messagesOf(reference.frames, room).length === n, 20_000, 'the burst at the reference member');
    const expected = messagesOf(reference.frames, room);
    expect(expected.map((f) => f.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    await waitFor(
      () => [wsBatch.frames, rawBatch.frames(), rawPlainBatch.frames()].every((fs) => messagesOf(fs, room).length >= n) && client.messages.length >= n,
      20_000,
      'the burst at every batching member',
    );
    for (const fs of [wsBatch.frames, rawBatch.frames(), rawPlainBatch.frames()]) expect(messagesOf(fs, room)).toEqual(expected);
    expect(client.messages.map((m) => [m.seq, m.data])).toEqual(expected.map((f) => [f.seq, f.data]));
    // Every frame, not only messages (presence diffs among them), in the same order as the unbatched member's.
    const fromBurst = (fs: Frame[]): Frame[] => fs.slice(fs.findIndex((f) => f.type === 'message')).filter((f) => f.type !== 'ping');
    expect(fromBurst(rawPlainBatch.frames())).toEqual(fromBurst(reference.frames));

    // A recovery: `joined` and the missed messages are queued in one turn, so they come in batch frames.
    const epoch = String(expected[0]!.epoch);
    const recovered = await rawMember(node.port, room, { offer: null, batch: true, since: { seq: 0, epoch } });
    await waitFor(() => messagesOf(recovered.frames(), room).length === n, 20_000, 'the recovery');
    expect(messagesOf(recovered.frames(), room)).toEqual(expected);
    expect(recovered.raw.frames.filter((f) => f.payload.includes(0x0a)).length).toBeGreaterThan(0);
    expect(recovered.raw.frames.length).toBeLessThan(n);

    // Batches happened, and the members that asked for none never got one (their whole-message JSON.parse held).
    expect(await metric(node, 'switchboard_batch_frames_total')).toBeGreaterThan(batchesBefore);
    expect(reference.messages).toBe(reference.frames.length);
  });

  it.skipIf(!HAVE_CHROMIUM)(
    "Chromium's WebSocket (permessage-deflate) reads the shared compressed frames and compressed batch frames: the same data as a plain member",
    async () => {
      const room = 'chromium-1';
      const reference = await wsMember(node.wsUrl, room, { deflate: false, batch: false });
      const rawBatch = await rawMember(node.port, room, { offer: OFFER, batch: true });
      const page = await chromiumMember(node.wsUrl, room);
      expect(await page.evaluate(() => (globalThis as unknown as { sock: BrowserSocket }).sock.extensions)).toMatch(/^permessage-deflate/);

      // One at a time (each alone in its frame), then a pipelined burst (batches holding compressed messages).
      for (let i = 0; i < 6; i++) await publish(node, room, payload(i));
      const n = 60;
      const publisher = await openRawWs(node.port, '/ws');
      sockets.push({ close: () => publisher.socket.destroy() });
      publisher.sendTexts([
        JSON.stringify({ type: 'connect', id: 'c' }),
        JSON.stringify({ type: 'join', id: 'j', room }),
        ...Array.from({ length: n }, (_, i) => JSON.stringify({ type: 'publish', id: i, room, data: payload(i) })),
      ]);
      const total = 6 + n;
      await waitFor(() => messagesOf(reference.frames, room).length === total, 20_000, 'every message at the reference member');
      await waitFor(async () => messagesOf(await browserFrames(page), room).length >= total, 20_000, 'every message in Chromium', 50);
      const expected = messagesOf(reference.frames, room);
      expect(messagesOf(await browserFrames(page), room)).toEqual(expected);
      await waitFor(() => messagesOf(rawBatch.frames(), room).length >= total, 20_000, 'every message at the raw member');
      expect(messagesOf(rawBatch.frames(), room)).toEqual(expected);
      // What Chromium read in the same turns as the raw member: compressed single messages and compressed batches.
      const compressedBatches = rawBatch.raw.frames.filter((f) => f.rsv1 && inflate(f.payload).includes(0x0a));
      expect(rawBatch.raw.frames.some((f) => f.rsv1)).toBe(true);
      expect(compressedBatches.length).toBeGreaterThan(0);
      const events = await page.evaluate(() => (globalThis as unknown as { events: number }).events);
      expect(events).toBeLessThan((await browserFrames(page)).length);
    },
  );
});
