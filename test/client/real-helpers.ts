/**
 * Helpers for client SDK tests against real node processes: SDK clients that record what the app saw,
 * HTTP publishing with idempotency ids, history reads, and restarting a node on the same port and data.
 */
import { rmSync } from 'node:fs';
import WebSocket from 'ws';
import { connect, type Client, type ClientOptions, type Message, type ResetEvent, type StateChange } from '../../src/client/index.js';
import { startNodeProcess, type NodeOptions, type NodeProcess } from '../helpers/node-process.js';
import { sleep } from '../helpers/wait.js';

export interface Recorded {
  client: Client;
  states: StateChange[];
  messages: Message[];
  resets: ResetEvent[];
}

/** An SDK client (ws's WebSocket, quick backoff) joined to `room`, recording states, messages and resets. */
export function sdk(url: string, room: string, options: ClientOptions = {}): Recorded {
  const client = connect(url, { WebSocket, backoff: { minMs: 100, maxMs: 1000 }, gapWaitMs: 200, connectTimeoutMs: 3000, ...options });
  const r: Recorded = { client, states: [], messages: [], resets: [] };
  client.on('state', (e) => r.states.push(e));
  const rm = client.room(room);
  rm.on('message', (m) => r.messages.push(m));
  rm.on('reset', (e) => r.resets.push(e));
  return r;
}

export interface PublishReply {
  seq: number;
  epoch: string;
  duplicate: boolean;
}

/** POST /api/publish once; throws on a network error or a non-200 answer. */
export async function publishHttp(baseUrl: string, room: string, data: unknown, idem?: string): Promise<PublishReply> {
  const res = await fetch(`${baseUrl}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room, data, ...(idem !== undefined ? { idem } : {}) }),
    signal: AbortSignal.timeout(5000),
  });
  const body = (await res.json()) as PublishReply;
  if (res.status !== 200) throw new Error(`publish: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Every message of a room, oldest first (GET /api/rooms/:room/history, paging forward). */
export async function historyHttp(baseUrl: string, room: string): Promise<Message[]> {
  const out: Message[] = [];
  let after = 0;
  for (;;) {
    const res = await fetch(`${baseUrl}/api/rooms/${room}/history?after=${after}&limit=1000`);
    const page = (await res.json()) as { messages: Message[]; more: boolean };
    out.push(...page.messages);
    const last = page.messages[page.messages.length - 1];
    if (!page.more || last === undefined) return out;
    after = last.seq;
  }
}

/**
 * A node that can be killed and started again on the same port (and, unless told otherwise, the same
 * data directory, which the test owns and removes in `dispose`).
 */
export class RestartableNode {
  node: NodeProcess | null = null;
  port = 0;

  constructor(
    readonly dataDir: string,
    private readonly options: Omit<NodeOptions, 'dataDir' | 'port'> = {},
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async start(dataDir = this.dataDir): Promise<void> {
    // The port may still be held for a moment after a kill: retry a few times.
    for (let i = 0; ; i++) {
      try {
        this.node = await startNodeProcess({ ...this.options, dataDir, ...(this.port !== 0 ? { port: this.port } : {}) });
        this.port = this.node.port;
        return;
      } catch (err) {
        if (i >= 5 || this.port === 0) throw err;
        await sleep(300);
      }
    }
  }

  async kill(): Promise<void> {
    await this.node?.kill();
    this.node = null;
  }

  async dispose(): Promise<void> {
    if (this.node !== null) {
      this.node.child.kill('SIGCONT');
      await this.node.kill();
    }
    this.node = null;
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Seqs are strictly increasing and contiguous (each once, in order, nothing skipped). */
export function contiguous(ms: Message[]): boolean {
  return ms.every((m, i) => i === 0 || m.seq === ms[i - 1]!.seq + 1);
}
