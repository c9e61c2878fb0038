/**
 * Publishes to rooms homed in another region (docs/scaling.md "Regions"): the publish is forwarded to the home
 * region, sequenced and stored there, and its ack comes back.
 *
 *   sb.g.<region>.publish   request: {v:1, ref, input, except?}; reply: {ok: {message, duplicate}} or
 *                           {error: {code, message}}. Served by every node of <region> in queue group
 *                           `sb.g.<region>`, so one of them answers, after its own publish path
 *                           (publisher.ts) made the message durable in that region.
 *
 * - The forwarding node has already run the edge's checks (names, idempotency id, the token's rights); the home
 *   runs the publish path only, and counts nothing at its edge (the message is counted once, where it came in).
 * - No answer (no responders: the link between the regions is down, or no node of the home region runs;
 *   a timeout: the link failed mid-request) is `unavailable`, retryable. The home may have stored the message
 *   anyway (the request got there and the reply did not come back): the client's retry with the same `idem`
 *   then gets the first ack (`duplicate: true`), not a second message, as long as the retry comes within the
 *   home's idempotency window (`--idempotency-ms`, 10 minutes by default).
 * - A home node that is asked about a room it does not consider its own (the regions' `--regions` or
 *   `--region-homes` differ) refuses it `unavailable` rather than sequence it in the wrong region.
 */
import { z } from 'zod';
import type { PublishInput } from '../engines/roomlog/roomlog.js';
import type { RoomRef } from '../engines/types.js';
import { isErrorCode, SwitchboardError } from '../protocol/errors.js';
import { isRoomName, isTenantName } from '../protocol/names.js';
import type { PublishOutcome } from './publisher.js';
import type { RegionHomes } from './region-homes.js';

/** Why a request to another region got no answer. */
export type RegionTransportFailure = 'no_responders' | 'timeout' | 'failed';

export class RegionTransportError extends Error {
  override readonly name = 'RegionTransportError';
  constructor(
    readonly kind: RegionTransportFailure,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** How nodes reach the nodes of another region (NATS request/reply through the supercluster: node/regions-node.ts). */
export interface RegionTransport {
  /** One request, answered by one server of the subject's queue group; rejects with a RegionTransportError. */
  request(subject: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Serves `subject` in queue group `queue` until closed; the handler's bytes are the reply. */
  serve(subject: string, queue: string, handler: (body: Uint8Array) => Promise<Uint8Array>): Promise<{ close(): Promise<void> }>;
}

export const regionPublishSubject = (region: string): string => `sb.g.${region}.publish`;
export const regionQueue = (region: string): string => `sb.g.${region}`;

const requestSchema = z.object({
  v: z.literal(1),
  ref: z.object({ tenant: z.string(), room: z.string() }).strict(),
  input: z
    .object({
      from: z.string(),
      data: z.json(),
      idem: z.string().optional(),
      event: z.string().optional(),
      key: z.string().optional(),
      maxPerSecond: z.number().int().min(0).optional(),
    })
    .strict(),
  except: z.string().optional(),
});

type Reply = { ok: PublishOutcome } | { error: { code: string; message: string } };

const enc = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value), 'utf8');
const dec = (bytes: Uint8Array): unknown => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));

/** The forwarding side: which rooms are homed elsewhere, and their publishes sent there. */
export class RegionForwarder {
  constructor(
    private readonly homes: RegionHomes,
    private readonly transport: RegionTransport,
    private readonly timeoutMs: number,
    /** Told of every forwarded publish: the home, and `ok` or the code it was answered with. */
    private readonly onForwarded?: (home: string, result: string) => void,
  ) {}

  /** The room's home region when it is not this node's; undefined when the room is homed here. */
  remoteHome(ref: RoomRef): string | undefined {
    const home = this.homes.homeOf(ref.tenant, ref.room);
    return home === this.homes.local ? undefined : home;
  }

  async publish(home: string, ref: RoomRef, input: PublishInput, except?: string): Promise<PublishOutcome> {
    const body = enc({ v: 1, ref: { tenant: ref.tenant, room: ref.room }, input, ...(except !== undefined ? { except } : {}) });
    let reply: Reply;
    try {
      reply = dec(await this.transport.request(regionPublishSubject(home), body, this.timeoutMs)) as Reply;
    } catch (err) {
      this.onForwarded?.(home, err instanceof RegionTransportError ? err.kind : 'failed');
      const why = err instanceof RegionTransportError && err.kind === 'timeout' ? `did not answer within ${this.timeoutMs} ms` : 'is unreachable';
      throw new SwitchboardError('unavailable', `the room's home region ${home} ${why}; publish not acknowledged, retry with the same idem`, { cause: err });
    }
    if ('ok' in reply) {
      this.onForwarded?.(home, 'ok');
      return reply.ok;
    }
    const code = isErrorCode(reply.error.code) ? reply.error.code : 'internal';
    this.onForwarded?.(home, code);
    throw new SwitchboardError(code, reply.error.message);
  }
}

/**
 * The home side: serves this region's publish subject, running `publish` (the node's own publish path) for
 * rooms homed here. Resolves once the subscription is active.
 */
export async function serveRegionPublishes(
  homes: RegionHomes,
  transport: RegionTransport,
  publish: (ref: RoomRef, input: PublishInput, except?: string) => Promise<PublishOutcome>,
  onError: (err: unknown) => void,
): Promise<{ close(): Promise<void> }> {
  const answer = async (body: Uint8Array): Promise<Reply> => {
    let req: z.infer<typeof requestSchema>;
    try {
      const parsed = requestSchema.safeParse(dec(body));
      if (!parsed.success) return { error: { code: 'bad_request', message: `forwarded publish: ${parsed.error.issues[0]?.message ?? 'invalid'}` } };
      req = parsed.data;
    } catch {
      return { error: { code: 'bad_request', message: 'forwarded publish: not JSON' } };
    }
    const { tenant, room } = req.ref;
    if (!isTenantName(tenant) || !isRoomName(room)) return { error: { code: 'bad_room', message: 'forwarded publish: invalid tenant or room' } };
    const home = homes.homeOf(tenant, room);
    if (home !== homes.local)
      return {
        error: {
          code: 'unavailable',
          message: `room ${tenant}/${room} is homed in ${home}, not ${homes.local}: the regions disagree on --regions or --region-homes`,
        },
      };
    const input: { -readonly [K in keyof PublishInput]: PublishInput[K] } = { from: req.input.from, data: req.input.data };
    if (req.input.idem !== undefined) input.idem = req.input.idem;
    if (req.input.event !== undefined) input.event = req.input.event;
    if (req.input.key !== undefined) input.key = req.input.key;
    if (req.input.maxPerSecond !== undefined) input.maxPerSecond = req.input.maxPerSecond;
    try {
      return { ok: await publish({ tenant, room }, input, req.except) };
    } catch (err) {
      if (err instanceof SwitchboardError) return { error: { code: err.code, message: err.message } };
      onError(err);
      return { error: { code: 'internal', message: 'internal error' } };
    }
  };
  return transport.serve(regionPublishSubject(homes.local), regionQueue(homes.local), async (body) => enc(await answer(body)));
}
