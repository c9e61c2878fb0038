/**
 * Room policies: which delivery policy and publish cap a room has, from the `roomPolicies` rules of the
 * configuration (first rule whose tenant and room patterns match wins; no match: `ordered`, no cap). Resolved
 * once per room and remembered (a bounded cache), so a publish or a join pays one map lookup.
 *
 * The delivery policies (docs/operations.md "Delivery policies"):
 * - `ordered`: every message in order; a member that reads too slowly is cut (4003, slow consumer).
 * - `conflate`: a member that falls behind is sent nothing until it reads again, then the newest message of each
 *   key among what it missed (a `catchup` frame first), then every new message; it is never cut for being slow.
 * - `drop`: a member that falls behind is sent nothing until it reads again, then a `skipped` frame naming the
 *   seqs it missed and the room's newest message, then every new message.
 */
import { compilePatterns, type RoomMatcher } from '../auth/patterns.js';
import type { RoomPolicyRule } from '../config/schema.js';

export type DeliveryPolicy = RoomPolicyRule['delivery'];

export interface RoomPolicy {
  readonly delivery: DeliveryPolicy;
  /** Publishes per second the room accepts cluster-wide; 0: no cap. */
  readonly maxPublishRate: number;
  /** `conflate`: keys whose newest message a node keeps for the room. */
  readonly conflateKeys: number;
}

export const DEFAULT_POLICY: RoomPolicy = { delivery: 'ordered', maxPublishRate: 0, conflateKeys: 10_000 };

/** Rooms whose policy is remembered at most (then the cache starts over: a lookup is cheap, only not free). */
const CACHE_MAX = 100_000;

export class RoomPolicies {
  private readonly rules: ReadonlyArray<{ tenant: string; rooms: RoomMatcher; policy: RoomPolicy }>;
  private cache = new Map<string, RoomPolicy>();

  constructor(rules: readonly RoomPolicyRule[]) {
    this.rules = rules.map((r) => ({
      tenant: r.tenant,
      rooms: compilePatterns(r.rooms),
      policy: { delivery: r.delivery, maxPublishRate: r.maxPublishRate, conflateKeys: r.conflateKeys },
    }));
  }

  /** Whether any rule is configured (none: every room is `ordered` without a cap). */
  get any(): boolean {
    return this.rules.length > 0;
  }

  of(tenant: string, room: string): RoomPolicy {
    if (this.rules.length === 0) return DEFAULT_POLICY;
    const key = `${tenant}/${room}`;
    let policy = this.cache.get(key);
    if (policy === undefined) {
      policy = this.rules.find((r) => (r.tenant === '*' || r.tenant === tenant) && r.rooms(room))?.policy ?? DEFAULT_POLICY;
      if (this.cache.size >= CACHE_MAX) this.cache = new Map();
      this.cache.set(key, policy);
    }
    return policy;
  }
}
