/**
 * Hooks: the app's backend decides, per request, who may connect (`connect`), join a room (`join`) and what may be
 * published (`publish`). Each hook is a URL: `http(s)://…` (a JSON POST) or `nats:<subject>` (a NATS request on the
 * node's connection, for backends on the bus). The answer is JSON: `{"allow":true,…}` or `{"allow":false,…}`
 * (docs/hooks.md has every payload).
 *
 * Each hook has its own timeout and concurrency limit, and a failure policy for a backend that is down, slow (past
 * the timeout), answers non-2xx or something that is not a valid answer, or has `concurrency` requests in flight
 * already: fail closed by default (the request is refused `unavailable`, retryable), or open (`failOpen`: it goes on
 * as if allowed, unchanged; not for `connect`, which has no identity without an answer). Every call is counted by
 * hook and result, and timed (`onCall`).
 */
import { z } from 'zod';
import type { HookConfig } from '../config/schema.js';
import { SwitchboardError } from '../protocol/errors.js';
import type { Json } from '../protocol/wire.js';

export type HookKind = 'connect' | 'join' | 'publish';

/** How a hook URL is reached: an HTTP POST, or a NATS request (`nats:<subject>`). Rejects on failure or timeout. */
export interface HookTransport {
  http(url: string, body: string, timeoutMs: number): Promise<{ status: number; body: string }>;
  /** Undefined when the node has no NATS connection (then `nats:` hooks are a configuration error). */
  nats?: (subject: string, body: string, timeoutMs: number) => Promise<string>;
}

/** The result label of `switchboard_hook_requests_total`. */
export type HookResult = 'allow' | 'deny' | 'error' | 'timeout' | 'overloaded';

const json = z.custom<Json>((v) => v !== undefined);
const refusal = z.object({ allow: z.literal(false), message: z.string().max(1024).optional() });

/** `connect`: who the connection is and what it may do. */
export const connectAnswer = z.discriminatedUnion('allow', [
  z.object({
    allow: z.literal(true),
    user: z.string(),
    tenant: z.string().optional(),
    rooms: z.object({ join: z.array(z.string().max(256)).max(256).optional(), publish: z.array(z.string().max(256)).max(256).optional() }).optional(),
    services: z.object({ send: z.array(z.string().max(256)).max(256).optional(), rpc: z.array(z.string().max(256)).max(256).optional() }).optional(),
    /** ms since the epoch: the connection is closed with 4005 then (the client reconnects and the hook is asked again). */
    expiresAt: z.number().int().positive().optional(),
  }),
  refusal,
]);
/** `join`: optionally what the user is shown with in the room's presence. */
export const joinAnswer = z.discriminatedUnion('allow', [z.object({ allow: z.literal(true), info: json.optional() }), refusal]);
/** `publish`: optionally the message rewritten (data, event). */
export const publishAnswer = z.discriminatedUnion('allow', [
  z.object({ allow: z.literal(true), data: json.optional(), event: z.string().optional() }),
  refusal,
]);

type Answer<K extends HookKind> = K extends 'connect'
  ? z.infer<typeof connectAnswer>
  : K extends 'join'
    ? z.infer<typeof joinAnswer>
    : z.infer<typeof publishAnswer>;
const SCHEMAS: { readonly [K in HookKind]: z.ZodType<Answer<K>> } = { connect: connectAnswer, join: joinAnswer, publish: publishAnswer };

/** Largest answer read, bytes: a backend answering too much is a failure. */
const MAX_ANSWER_BYTES = 65_536;

export class Hook<K extends HookKind> {
  private inFlight = 0;

  constructor(
    readonly kind: K,
    private readonly config: HookConfig,
    private readonly transport: HookTransport,
    private readonly onCall: (kind: HookKind, result: HookResult, seconds: number) => void,
  ) {
    if (config.url.startsWith('nats:') && transport.nats === undefined) {
      throw new SwitchboardError('bad_request', `hooks.${kind}: ${config.url} needs a NATS connection (--nats)`);
    }
  }

  /**
   * Asks the backend. Resolves with its answer when it allowed; with null when it could not answer and the hook
   * fails open (go on unchanged). Throws `refused` with the backend's message when it denied, `unavailable` when it
   * could not answer and the hook fails closed.
   */
  async ask(payload: Record<string, Json | undefined>): Promise<Extract<Answer<K>, { allow: true }> | null> {
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    if (this.inFlight >= this.config.concurrency) return this.failed('overloaded', seconds(), `${this.config.concurrency} requests in flight`);
    this.inFlight++;
    let text: string;
    try {
      text = await this.send(JSON.stringify({ hook: this.kind, ...payload }));
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || /timeout/i.test(err.message));
      return this.failed(timedOut ? 'timeout' : 'error', seconds(), (err as Error).message);
    } finally {
      this.inFlight--;
    }
    let answer: Answer<K>;
    try {
      if (text.length > MAX_ANSWER_BYTES) throw new Error(`answer over ${MAX_ANSWER_BYTES} bytes`);
      const schema = SCHEMAS[this.kind] as z.ZodType<Answer<K>>;
      const parsed = schema.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(`not a ${this.kind} answer: ${parsed.error.issues[0]?.message ?? 'schema mismatch'}`);
      answer = parsed.data;
    } catch (err) {
      return this.failed('error', seconds(), (err as Error).message);
    }
    if (!answer.allow) {
      this.onCall(this.kind, 'deny', seconds());
      throw new SwitchboardError('refused', answer.message ?? `the application refused this ${this.kind}`);
    }
    this.onCall(this.kind, 'allow', seconds());
    return answer as Extract<Answer<K>, { allow: true }>;
  }

  private async send(body: string): Promise<string> {
    const { url, timeoutMs } = this.config;
    if (url.startsWith('nats:')) return this.transport.nats!(url.slice('nats:'.length), body, timeoutMs);
    const res = await this.transport.http(url, body, timeoutMs);
    if (res.status < 200 || res.status > 299) throw new Error(`the backend answered HTTP ${res.status}`);
    return res.body;
  }

  private failed(result: HookResult, seconds: number, why: string): null {
    this.onCall(this.kind, result, seconds);
    if (this.config.failOpen) return null;
    throw new SwitchboardError('unavailable', `the ${this.kind} hook did not answer (${result}: ${why}); retry later`);
  }
}

/** An HTTP transport on the global fetch, with a timeout, reading at most MAX_ANSWER_BYTES + 1. */
export const fetchTransport: HookTransport['http'] = async (url, body, timeoutMs) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(timeoutMs) });
  const reader = res.body?.getReader();
  let text = '';
  if (reader !== undefined) {
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (text.length > MAX_ANSWER_BYTES) {
        await reader.cancel();
        break;
      }
    }
  }
  return { status: res.status, body: text };
};

/** The hooks a node runs, from its configuration (absent hooks are undefined). */
export interface Hooks {
  readonly connect?: Hook<'connect'>;
  readonly join?: Hook<'join'>;
  readonly publish?: Hook<'publish'>;
  /** Upgrade headers and cookies the connect hook is sent (lower-case names). */
  readonly connectHeaders: readonly string[];
  readonly connectCookies: readonly string[];
}

export function createHooks(
  config: { connect?: HookConfig & { headers: string[]; cookies: string[] }; join?: HookConfig; publish?: HookConfig },
  transport: HookTransport,
  onCall: (kind: HookKind, result: HookResult, seconds: number) => void,
): Hooks {
  return {
    ...(config.connect !== undefined ? { connect: new Hook('connect', config.connect, transport, onCall) } : {}),
    ...(config.join !== undefined ? { join: new Hook('join', config.join, transport, onCall) } : {}),
    ...(config.publish !== undefined ? { publish: new Hook('publish', config.publish, transport, onCall) } : {}),
    connectHeaders: (config.connect?.headers ?? []).map((h) => h.toLowerCase()),
    connectCookies: config.connect?.cookies ?? [],
  };
}
