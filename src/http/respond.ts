import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SwitchboardError, ErrorCode } from '../protocol/errors.js';

/** An HTTP error with the same stable codes as the WebSocket protocol. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The client went away before its request was read in full (it disconnected mid-body). A client event,
 * not a server fault: there is nobody left to answer.
 */
export class RequestAbortedError extends Error {
  override readonly name = 'RequestAbortedError';
  constructor(options?: { cause?: unknown }) {
    super('the client aborted the request before its body was read', options);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: { code: err.code, message: err.message } });
}

/** A SwitchboardError as an HTTP error: its status comes from the table in protocol/errors.ts. */
export function httpErrorOf(err: SwitchboardError): HttpError {
  return new HttpError(err.httpStatus, err.code, err.message);
}

/** Reads a JSON body of at most `limit` bytes. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'bad_request', 'Content-Type must be application/json');
  const body = await readBody(req, limit);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'bad_json', 'body is not valid JSON');
  }
}

/** Reads a body of at most `limit` bytes (413 beyond it, RequestAbortedError when the client goes away mid-body). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw new HttpError(413, 'frame_too_large', `body exceeds ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, 'frame_too_large', `body exceeds ${limit} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    // Node ends the body with an error ('aborted', ECONNRESET) when the client disconnects mid-body.
    if (!(err instanceof HttpError) && (req.destroyed || req.socket.destroyed)) throw new RequestAbortedError({ cause: err });
    throw err;
  }
  return Buffer.concat(chunks);
}
