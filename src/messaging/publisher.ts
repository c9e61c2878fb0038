/**
 * The publish path (ARCHITECTURE.md §4), shared by the WebSocket `publish` frame and POST /api/publish:
 *   1. RoomLog assigns the seq (or returns the first message for a repeated idempotency id);
 *   2. DurableLog stores it (idempotent on tenant/room/seq) — the ack waits for this: acked means durable;
 *   3. the backplane carries it to every node with members in the room.
 * A repeated publish (same idempotency id) whose first attempt failed or timed out at step 2 or 3 makes the
 * message durable and published now, so a client retrying turns an error into exactly one stored and
 * delivered message. Duplicates are published again for that reason; nodes drop seqs they already
 * delivered, so members still get each message once.
 * With regions (docs/scaling.md "Regions"), a room homed in another region is not sequenced here: the publish is
 * forwarded to its home (region-forward.ts), which runs these steps there, and its answer is this one's.
 */
import type { Backplane } from '../engines/backplane/backplane.js';
import type { DurableLog } from '../engines/durablelog/durablelog.js';
import type { PublishInput, RoomLog } from '../engines/roomlog/roomlog.js';
import { EngineError } from '../engines/errors.js';
import type { Json, RoomMessage, RoomRef } from '../engines/types.js';
import { SwitchboardError } from '../protocol/errors.js';
import { withTimeout } from '../util/timeout.js';
import type { RegionForwarder } from './region-forward.js';
import { encodeEnvelope, roomSubject, userSubject } from './subjects.js';

export interface PublishOutcome {
  readonly message: RoomMessage;
  readonly duplicate: boolean;
}

export class Publisher {
  constructor(
    private readonly roomLog: RoomLog,
    private readonly durableLog: DurableLog,
    private readonly backplane: Backplane,
    private readonly onBackplaneError: (err: unknown) => void,
    private readonly durableTimeoutMs: number,
    /** With regions: rooms homed elsewhere are published there. */
    private readonly regions?: RegionForwarder,
  ) {}

  /** `except`: the socket id of a connection the message is not delivered to (a Pusher client event's sender). */
  async toRoom(ref: RoomRef, input: PublishInput, except?: string): Promise<PublishOutcome> {
    const home = this.regions?.remoteHome(ref);
    if (home !== undefined) return this.regions!.publish(home, ref, input, except);
    let appended;
    try {
      appended = await this.roomLog.append(ref, input);
    } catch (err) {
      // The room's publish cap (room-policy.ts): nothing was sequenced; the publisher may retry after a second.
      if (err instanceof EngineError && err.code === 'full') throw new SwitchboardError('rate_limited', err.message);
      throw new SwitchboardError('unavailable', 'sequencer unavailable, publish not accepted', { cause: err });
    }
    try {
      await withTimeout(this.durableLog.append(appended.message), this.durableTimeoutMs, `durable log did not confirm within ${this.durableTimeoutMs} ms`);
    } catch (err) {
      if (err instanceof EngineError && err.code === 'conflict' && this.roomLog.refused !== undefined) {
        // Another message holds this seq: the sequence fell behind. Forget this one (its retry is sequenced anew) and fence.
        // A failed clean-up (Redis down) is done again when the retry, handed the same seq, is refused again.
        await this.roomLog.refused(appended.message).catch(() => undefined);
      }
      throw new SwitchboardError('unavailable', 'durable log unavailable, publish not acknowledged; retry with the same idem', { cause: err });
    }
    try {
      await this.backplane.publish(
        roomSubject(ref),
        encodeEnvelope(except !== undefined ? { k: 'm', m: appended.message, x: except } : { k: 'm', m: appended.message }),
      );
    } catch (err) {
      // Durable already: members get it through gap repair when the next message arrives, or when the
      // publisher retries with the same idempotency id.
      this.onBackplaneError(err);
    }
    return appended;
  }

  /** Closes every connection of a user that can be terminated (Pusher's), on every node. */
  async terminateUser(tenant: string, user: string): Promise<void> {
    try {
      await this.backplane.publish(userSubject(tenant, user), encodeEnvelope({ from: 'server', ts: Date.now(), data: null, terminate: true }));
    } catch (err) {
      throw new SwitchboardError('unavailable', 'backplane unavailable', { cause: err });
    }
  }

  /** A direct message to every live connection of a user (not sequenced, not stored). */
  async toUser(tenant: string, user: string, from: string, data: Json, event?: string): Promise<void> {
    try {
      await this.backplane.publish(
        userSubject(tenant, user),
        encodeEnvelope(event !== undefined ? { from, ts: Date.now(), data, event } : { from, ts: Date.now(), data }),
      );
    } catch (err) {
      throw new SwitchboardError('unavailable', 'backplane unavailable', { cause: err });
    }
  }
}
