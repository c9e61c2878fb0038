/**
 * A plain protocol-v1 test client over a real WebSocket: records every frame, answers pings (unless
 * told not to), and offers request/response and wait-for-frame helpers.
 */
import WebSocket from 'ws';

export type Frame = Record<string, unknown> & { type: string };

export class TestClient {
  readonly frames: Frame[] = [];
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private nextId = 1;
  closed: { code: number; reason: string } | null = null;
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];
  answerPings = true;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as Frame;
      this.frames.push(f);
      if (f.type === 'ping' && this.answerPings) this.send({ type: 'pong' });
      const still: typeof this.waiters = [];
      for (const w of this.waiters) {
        if (w.pred(f)) w.resolve(f);
        else still.push(w);
      }
      this.waiters = still;
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closeWaiters) w(this.closed);
    });
    ws.on('error', () => undefined);
  }

  /** Opens the WebSocket (with `headers` on the upgrade request, e.g. a cookie). */
  static open(url: string, headers?: Record<string, string>): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = headers === undefined ? new WebSocket(url) : new WebSocket(url, { headers });
      const c = new TestClient(ws);
      ws.once('open', () => resolve(c));
      ws.once('unexpected-response', (_req, res) =>
        reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, headers: res.headers })),
      );
      ws.once('error', reject);
    });
  }

  /** Opens and sends `connect`; resolves with the `connected` frame. */
  static async connect(url: string, connect: Record<string, unknown> = {}): Promise<TestClient> {
    const c = await TestClient.open(url);
    const reply = await c.request({ type: 'connect', ...connect });
    if (reply.type !== 'connected') throw new Error(`connect failed: ${JSON.stringify(reply)}`);
    return c;
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** Sends a frame with a fresh id and resolves with the reply carrying that id. */
  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<Frame> {
    const id = this.nextId++;
    const p = this.waitFor((f) => f.id === id, timeoutMs, `reply to ${JSON.stringify(frame).slice(0, 80)}`);
    this.send({ ...frame, id });
    return p;
  }

  /** Resolves with the first frame (already received or future) matching `pred`, consuming nothing. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000, what = 'frame'): Promise<Frame> {
    const have = this.frames.find(pred);
    if (have !== undefined) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; last frames: ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  messages(room: string): Frame[] {
    return this.frames.filter((f) => f.type === 'message' && f.room === room);
  }

  async waitForMessages(room: string, count: number, timeoutMs = 10_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages(room).length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} messages in ${room}, got ${this.messages(room).length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.messages(room);
  }

  waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for close')), timeoutMs);
      this.closeWaiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  close(): void {
    this.ws.close();
  }
}
