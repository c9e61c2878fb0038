/**
 * Protocol and operations edges (issue 12 §3), each against a real node process over real sockets:
 * subprotocol negotiation, the RFC 6455 close codes the WebSocket layer sends, frames pipelined behind a
 * failing connect, aborted HTTP bodies, and non-canonical JWT encodings.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { buildFrame, openRawWs } from '../helpers/raw-ws.js';
import { API_KEY, JWT_SECRET } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';

let node: NodeProcess;

async function metric(name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

beforeAll(async () => {
  node = await startNodeProcess({ dev: false, args: ['--jwt-secret', JWT_SECRET, '--api-key', API_KEY, '--log-level', 'debug'] });
});

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
