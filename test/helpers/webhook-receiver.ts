/**
 * A webhook receiver for tests: a real HTTP server on a free port that records every request (headers and raw body)
 * and answers as the test says (2xx, an error status, or not at all until released).
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  readonly headers: IncomingHttpHeaders;
  readonly rawBody: string;
  readonly body: { time_ms: number; events: Record<string, unknown>[] };
}

/** How the receiver answers a request: a status, or 'hang' (no answer until `release`). */
export type Answer = number | 'hang';

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Decides each answer (default 200). */
  answer: (req: ReceivedRequest) => Answer = () => 200;
  private readonly hanging: ServerResponse[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(path = '/hooks'): Promise<WebhookReceiver> {
    const box: { self?: WebhookReceiver } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const r: ReceivedRequest = { headers: req.headers, rawBody, body: JSON.parse(rawBody) as ReceivedRequest['body'] };
        box.self!.requests.push(r);
        const a = box.self!.answer(r);
        if (a === 'hang') box.self!.hanging.push(res);
        else res.writeHead(a).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const self = new WebhookReceiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`);
    box.self = self;
    return self;
  }

  /** Every event received, in arrival order (duplicates included). */
  events(): Record<string, unknown>[] {
    return this.requests.flatMap((r) => r.body.events);
  }

  /** Every event received once per id (the first copy). */
  unique(): Record<string, unknown>[] {
    const seen = new Set<unknown>();
    return this.events().filter((e) => !seen.has(e.id) && seen.add(e.id) !== undefined);
  }

  /** Answers every hanging request with `status`. */
  release(status = 200): void {
    for (const res of this.hanging.splice(0)) if (!res.destroyed) res.writeHead(status).end();
  }

  async close(): Promise<void> {
    this.release(503);
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
