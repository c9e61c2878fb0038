/**
 * Protocol and operations edges (issue 12 §3), each against a real node process over real sockets:
 * subprotocol negotiation, the RFC 6455 close codes the WebSocket layer sends, frames pipelined behind a
 * failing connect, aborted HTTP bodies, and non-canonical JWT encodings.
 */
import { connect } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { buildFrame, openRawWs } from '../helpers/raw-ws.js';
import { API_KEY, JWT_SECRET, token } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';

let node: NodeProcess;

async function metric(name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

beforeAll(async () => {
  node = await startNodeProcess({ dev: false, args: ['--jwt-secret', JWT_SECRET, '--api-key', API_KEY, '--log-level', 'debug'], startTimeoutMs: 100_000 });
}, 120_000);

afterAll(async () => {
  await node.stop();
});

describe('WebSocket subprotocol', () => {
  const header = (handshake: string): string | undefined =>
    handshake
      .split('\r\n')
      .find((l) => l.toLowerCase().startsWith('sec-websocket-protocol:'))
      ?.split(':')[1]
      ?.trim();

  it('an upgrade without Sec-WebSocket-Protocol is accepted and gets none', async () => {
    const ws = await openRawWs(node.port);
    expect(header(ws.handshake)).toBeUndefined();
    ws.socket.destroy();
  });

  it('switchboard.v1.json is selected when offered, whatever else is offered', async () => {
    const ws = await openRawWs(node.port, '/ws', { headers: { 'Sec-WebSocket-Protocol': 'chat, switchboard.v1.json' } });
    expect(header(ws.handshake)).toBe('switchboard.v1.json');
    ws.socket.destroy();
  });

  it('any other offer is refused with 400 before the upgrade, and counted', async () => {
    const before = await metric('switchboard_errors_total', 'code="bad_request"');
    const refused = await openRawWs(node.port, '/ws', { headers: { 'Sec-WebSocket-Protocol': 'mqtt, chat' } }).then(
      () => null,
      (err: Error & { response?: string }) => err.response ?? err.message,
    );
    expect(refused).toMatch(/^HTTP\/1\.1 400 /);
    expect(refused).toContain('switchboard.v1.json');
    expect(await metric('switchboard_errors_total', 'code="bad_request"')).toBe(before + 1);
  });

  it('a client library asking for another subprotocol (like a browser\'s new WebSocket(url, "x")) fails', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const ws = new WebSocket(node.wsUrl, 'x');
      ws.on('open', () => resolve(`open with ${ws.protocol}`));
      ws.on('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode}`));
      ws.on('error', (err) => resolve(`error ${err.message}`));
    });
    expect(outcome).toBe('refused 400');
  });
});

describe('close codes sent by the WebSocket layer (RFC 6455)', () => {
  const text = (s: string): Buffer => Buffer.from(s, 'utf8');
  const closePayload = (code: number, reason: Buffer = Buffer.alloc(0)): Buffer => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code, 0);
    return Buffer.concat([b, reason]);
  };
  type Send = (ws: Awaited<ReturnType<typeof openRawWs>>) => void;
  const cases: [string, number, Send][] = [
    ['invalid UTF-8 in a text frame', 1007, (ws) => ws.sendFrame(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))],
    ['invalid UTF-8 in a close reason', 1007, (ws) => ws.sendFrame(closePayload(1000, Buffer.from([0xc3, 0x28])), { opcode: 0x8 })],
    ['a continuation frame with no message to continue', 1002, (ws) => ws.sendFrame(text('x'), { opcode: 0x0 })],
    ['a reserved opcode', 1002, (ws) => ws.sendFrame(text('x'), { opcode: 0x3 })],
    ['RSV1 set without an extension', 1002, (ws) => ws.sendFrame(text('{}'), { rsv: 4 })],
    ['an unmasked client frame', 1002, (ws) => ws.sendFrame(text('{}'), { masked: false })],
    ['a control frame over 125 bytes', 1002, (ws) => ws.sendFrame(Buffer.alloc(126), { opcode: 0x9 })],
    ['a fragmented control frame', 1002, (ws) => ws.sendFrame(text('p'), { opcode: 0x9, fin: false })],
    ['a frame over 4 × maxFrameBytes', 1009, (ws) => ws.sendFrame(Buffer.alloc(4 * 65_536 + 1, 0x20))],
    ['an invalid close code', 1002, (ws) => ws.sendFrame(closePayload(1005), { opcode: 0x8 })],
    [
      'a message in more than 16,384 fragments',
      1008,
      (ws) => {
        const parts = [Buffer.from(''), ...Array.from({ length: 16_400 }, () => Buffer.alloc(0))];
        ws.socket.write(Buffer.concat(parts.map((p, i) => buildFrame(p, { opcode: i === 0 ? 0x1 : 0x0, fin: false }))));
      },
    ],
  ];

  it.each(cases)('%s → close %i, counted under that code', async (_name, code, send) => {
    const before = await metric('switchboard_disconnects_total', `code="${code}"`);
    const ws = await openRawWs(node.port);
    send(ws);
    await waitFor(() => ws.closeFrame() !== null, 10_000, 'the close frame');
    expect(ws.closeFrame()!.code).toBe(code);
    ws.socket.destroy();
    await waitFor(async () => (await metric('switchboard_disconnects_total', `code="${code}"`)) === before + 1, 10_000, `disconnect counted as ${code}`);
  });
});

describe('frames pipelined behind a failing connect', () => {
  const pipelined = [
    { type: 'join', id: 1, room: 'lobby' },
    { type: 'publish', id: 2, room: 'lobby', data: 'x' },
    { type: 'history', id: 3, room: 'lobby' },
    { type: 'presence', id: 'four', room: 'lobby' },
  ];

  it.each([
    ['a token with the wrong signature', () => token('x', undefined, { secret: 'another-secret-0123456789-abc' }), 'unauthorized', 4500],
    ['an expired token', () => token('x', undefined, { expiresIn: Math.floor(Date.now() / 1000) - 10 }), 'token_expired', 4005],
  ])('%s: the connect error first, then every held frame in order, then the close', async (_name, makeToken, code, closeCode) => {
    const ws = await openRawWs(node.port, '/ws', { keepText: true });
    // One TCP write: the node reads them together, and holds the others while the connect authenticates.
    ws.sendTexts([JSON.stringify({ type: 'connect', id: 'c', token: await makeToken() }), ...pipelined.map((f) => JSON.stringify(f))]);
    await waitFor(() => ws.closeFrame() !== null, 10_000, 'the close frame');
    const replies = ws.texts.map((t) => JSON.parse(t) as Record<string, unknown>);
    expect(replies.map((r) => [r.type, r.code, r.id])).toEqual([['error', code, 'c'], ...pipelined.map((f) => ['error', 'not_connected', f.id])]);
    expect(replies[1]).toMatchObject({ room: 'lobby' });
    expect(ws.closeFrame()!.code).toBe(closeCode);
    ws.socket.destroy();
  });
});

describe('an HTTP request aborted mid-body', () => {
  it('is counted and logged as a client event (debug), not as an error', async () => {
    const before = await metric('switchboard_http_aborted_total');
    const logsBefore = node.logs.length;
    const socket = connect(node.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.write(
      `POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n',
    );
    // 100 Continue: the node has parsed the head and runs the request, which now reads the body.
    await waitFor(() => answer.startsWith('HTTP/1.1 100'), 10_000, '100 Continue');
    socket.write('{"room":"lobby","data":"x');
    socket.destroy();
    await waitFor(async () => (await metric('switchboard_http_aborted_total')) === before + 1, 10_000, 'the aborted request counted');
    await waitFor(() => node.logs.slice(logsBefore).some((l) => l.msg === 'http request aborted by the client' && l.level === 20), 5_000, 'the debug line');
    expect(node.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
    // the API still answers
    const res = await fetch(`${node.url}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'lobby', data: 'after' }),
    });
    expect(res.status).toBe(200);
  });
});

describe('JWT encoding', () => {
  /** The same signature bytes, encoded another way: its last character's unused low bits set. */
  const strayBits = (jwt: string): string => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(jwt.at(-1)!);
    return jwt.slice(0, -1) + alphabet[last | 1];
  };

  it('a valid token connects (the encodings below differ from it only in how the same bytes are written)', async () => {
    const c = await openRawWs(node.port, '/ws', { keepText: true });
    c.sendText(JSON.stringify({ type: 'connect', id: 'c', token: await token('canon') }));
    await waitFor(() => c.texts.length > 0, 10_000, 'connect reply');
    expect(JSON.parse(c.texts[0]!)).toMatchObject({ type: 'connected', user: 'canon' });
    c.socket.destroy();
  });

  it.each([
    ['= padding appended to the signature', (jwt: string) => `${jwt}=`],
    ['== padding appended to the signature', (jwt: string) => `${jwt}==`],
    ['stray trailing bits in the signature', strayBits],
  ])('%s → unauthorized and close 4500', async (_name, mangle) => {
    const jwt = await token('padded');
    // HS256: 32 signature bytes are 43 characters, whose last one carries 2 unused bits.
    expect(jwt.split('.')[2]).toHaveLength(43);
    const c = await openRawWs(node.port, '/ws', { keepText: true });
    c.sendText(JSON.stringify({ type: 'connect', id: 'c', token: mangle(jwt) }));
    await waitFor(() => c.closeFrame() !== null, 10_000, 'the close frame');
    expect(JSON.parse(c.texts[0]!)).toMatchObject({ type: 'error', code: 'unauthorized', id: 'c' });
    expect(c.closeFrame()!.code).toBe(4500);
    c.socket.destroy();
  });
});
