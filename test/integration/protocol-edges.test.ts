/**
 * Protocol and operations edges (issue 12 §3), each against a real node process over real sockets:
 * subprotocol negotiation, the RFC 6455 close codes the WebSocket layer sends, frames pipelined behind a
 * failing connect, aborted HTTP bodies, and non-canonical JWT encodings.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { openRawWs } from '../helpers/raw-ws.js';
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
