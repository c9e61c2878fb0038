/**
 * The wire contract shared by the server and the SDKs (src/protocol): the structural check of server frames
 * (parse.ts) and the one close-code rule (close-codes.ts).
 */
import { describe, expect, it } from 'vitest';
import { CloseCodes, isReconnectCode, isTerminalCloseCode } from '../../src/protocol/close-codes.js';
import { parseServerFrame } from '../../src/protocol/parse.js';
import type { ServerFrame } from '../../src/protocol/wire.js';

const msg = { room: 'r', seq: 1, epoch: 'e1', from: 'alice', ts: 5, data: { text: 'hi' } };

/** One well-formed example of every server frame type. */
const FRAMES: ServerFrame[] = [
  {
    type: 'connected',
    id: 'connect',
    connId: 'c1',
    node: 'n1',
    user: 'alice',
    tenant: 'default',
    protocol: 1,
    pingIntervalMs: 25_000,
    pingTimeoutMs: 10_000,
    maxFrameBytes: 65_536,
  },
  { type: 'joined', id: 1, room: 'r', seq: 3, epoch: 'e1', recovery: 'recovered', missed: 2 },
  { type: 'left', id: 2, room: 'r' },
  { type: 'ack', id: 3, room: 'r', seq: 4, epoch: 'e1', duplicate: false },
  { type: 'message', ...msg },
  { type: 'history.page', id: 4, room: 'r', messages: [msg, { ...msg, seq: 2, data: null }], more: true },
  { type: 'presence.list', id: 5, room: 'r', members: [{ user: 'alice', online: true, connections: 1, lastSeen: 5 }] },
  { type: 'presence.diff', room: 'r', joined: [{ user: 'bob', at: 1 }], left: [], truncated: { joined: 60, left: 0 } },
  { type: 'direct', from: 'bob', ts: 6, data: [1, 'two'] },
  { type: 'sent', id: 'x', topic: 'orders.create', idem: 'i1', durable: true, duplicate: false },
  { type: 'rpc.result', id: 6, topic: 'pricing.quote', data: 0 },
  { type: 'ping' },
  { type: 'pong' },
  { type: 'notice', code: 'reconnect', reason: 'node shutting down', reconnectAfterMs: 300 },
  { type: 'error', id: 7, code: 'forbidden', message: 'no', retryable: false, room: 'r' },
];

describe('parseServerFrame', () => {
  it('accepts every server frame type as sent', () => {
    for (const f of FRAMES) expect(parseServerFrame(JSON.stringify(f))).toEqual(f);
  });

  it('allows unknown extra fields (a newer server) and absent optional ones', () => {
    expect(parseServerFrame(JSON.stringify({ type: 'ack', id: 1, room: 'r', seq: 1, epoch: 'e', duplicate: true, region: 'eu' }))).not.toBeNull();
    expect(parseServerFrame(JSON.stringify({ type: 'error', code: 'internal', message: 'x', retryable: true }))).not.toBeNull();
  });

  it('refuses what is not a well-formed server frame', () => {
    const bad: unknown[] = [
      'not json',
      42,
      null,
      [],
      { type: 'nope' },
      { type: 'toString' },
      { id: 1 },
      { type: 'message', ...msg, seq: '1' },
      { type: 'message', ...msg, data: undefined },
      { type: 'joined', id: 1, room: 'r', seq: 3, epoch: 'e1', recovery: 'maybe', missed: 0 },
      { type: 'joined', id: true, room: 'r', seq: 3, epoch: 'e1', recovery: 'none', missed: 0 },
      { type: 'history.page', id: 4, room: 'r', messages: [msg, { ...msg, epoch: 7 }], more: false },
      { type: 'history.page', id: 4, room: 'r', messages: {}, more: false },
      { type: 'presence.diff', room: 'r', joined: [], left: [], truncated: 3 },
      { type: 'notice', code: 'other', reason: '', reconnectAfterMs: 1 },
      { type: 'error', id: 7, code: 'forbidden', message: 'no', retryable: 'no' },
    ];
    for (const b of bad) expect(parseServerFrame(typeof b === 'string' ? b : JSON.stringify(b)), JSON.stringify(b)).toBeNull();
  });
});

describe('the close-code rule', () => {
  it('terminal: 4500–4999, and 1002, 1003, 1007, 1008, 1009 (the same client would fail the same way)', () => {
    for (const code of [1002, 1003, 1007, 1008, 1009, CloseCodes.unauthorized, CloseCodes.protocolViolation, 4999]) {
      expect(isTerminalCloseCode(code), String(code)).toBe(true);
      expect(isReconnectCode(code), String(code)).toBe(false);
    }
  });

  it('reconnect: 1000, 1001, 1006, 1011, 1012, 1013, 4000–4499 and unknown codes', () => {
    for (const code of [1000, 1001, 1005, 1006, 1011, 1012, 1013, 3000, 4000, 4001, 4002, 4003, 4004, 4005, 4499, 5000]) {
      expect(isReconnectCode(code), String(code)).toBe(true);
      expect(isTerminalCloseCode(code), String(code)).toBe(false);
    }
  });
});
