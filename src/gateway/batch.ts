/**
 * Batch frames (docs/protocol.md §2.7): when a connection that opted in at `connect` has several frames queued
 * for one write, consecutive text frames go out as one WebSocket text frame whose payload is their JSON texts
 * joined by "\n" (JSON.stringify never writes a raw newline). The order of everything stays as queued.
 *
 * Compressed frames stay compress-once: a batch holding any is itself a compressed message put together from
 * the frames' compressed payloads and stored blocks for the rest (protocol/deflate.ts `joinDeflated`), so
 * nothing is compressed per connection. Only connections that negotiated permessage-deflate are ever queued
 * compressed frames, so a batch for any other connection is plain text.
 */
import type { Socket } from 'node:net';
import { joinDeflated } from '../protocol/deflate.js';
import { readTextFrame, textFrame, type TextPayload } from '../protocol/wsframe.js';

const NEWLINE = Buffer.from('\n');
/**
 * Largest sum of the payloads joined into one batch frame; a batch is cut before a frame that would pass it (a bigger
 * frame goes alone). A compressed batch adds a few bytes per piece (stored block headers, sync tails).
 */
export const MAX_BATCH_BYTES = 64 * 1024;

export class FrameBatcher {
  constructor(
    /** Called for each batch frame written, with the number of server frames it carries. */
    private readonly onBatch: (frames: number) => void,
    private readonly maxBytes = MAX_BATCH_BYTES,
  ) {}

  /**
   * Writes `queue[start, end)` to `socket` (corked when more than one write), consecutive text frames joined
   * into batch frames; returns the bytes written.
   */
  write(socket: Socket, queue: readonly Buffer[], start: number, end: number): number {
    const out: Buffer[] = [];
    let run: TextPayload[] = [];
    let runBytes = 0;
    let runFirst = start;
    const closeRun = (at: number): void => {
      if (run.length === 1) out.push(queue[runFirst]!);
      else if (run.length > 1) out.push(this.batch(run));
      run = [];
      runBytes = 0;
      runFirst = at;
    };
    for (let i = start; i < end; i++) {
      const frame = queue[i]!;
      const text = readTextFrame(frame);
      if (text === null) {
        closeRun(i);
        out.push(frame);
        runFirst = i + 1;
        continue;
      }
      if (run.length > 0 && runBytes + 1 + text.payload.length > this.maxBytes) closeRun(i);
      run.push(text);
      runBytes += (run.length > 1 ? 1 : 0) + text.payload.length;
    }
    closeRun(end);
    let bytes = 0;
    if (out.length > 1) socket.cork();
    for (const b of out) {
      socket.write(b);
      bytes += b.length;
    }
    if (out.length > 1) socket.uncork();
    return bytes;
  }

  private batch(run: readonly TextPayload[]): Buffer {
    this.onBatch(run.length);
    if (run.some((t) => t.compressed)) return textFrame(joinDeflated(run, NEWLINE), true);
    return textFrame(
      Buffer.concat(
        run.flatMap((t, i) => (i === 0 ? [t.payload] : [NEWLINE, t.payload])),
        run.reduce((n, t, i) => n + t.payload.length + (i === 0 ? 0 : 1), 0),
      ),
    );
  }
}
