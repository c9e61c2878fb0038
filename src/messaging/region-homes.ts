/**
 * Which region is a room's home (docs/scaling.md "Regions"): the region that sequences the room (its RoomLog in
 * that region's Redis) and stores it (its JetStream stream), to which the other regions forward publishes.
 *
 * - A `regionHomes` rule decides first: the first whose tenant and room patterns match names the home.
 * - Any other room is homed by rendezvous hashing over `regions`: each region scores hash(region, tenant/room)
 *   and the highest score wins. Every node with the same region list computes the same home without asking
 *   anyone, and adding a region moves only the rooms that the new region now wins (about 1/n of them), never a
 *   room from one old region to another. The list's order does not matter.
 * A room's home must not change while it has messages: a change is a re-homing (not built; a new epoch).
 * Resolved once per room and remembered in a bounded cache, so a publish pays one map lookup.
 */
import { compilePatterns, type RoomMatcher } from '../auth/patterns.js';
import type { RegionHomeRule } from '../config/schema.js';

/** Rooms whose home is remembered at most (then the cache starts over). */
const CACHE_MAX = 100_000;

export class RegionHomes {
  private readonly rules: ReadonlyArray<{ tenant: string; rooms: RoomMatcher; region: string }>;
  private readonly regions: readonly string[];
  private cache = new Map<string, string>();

  /** `local`: this node's region; `regions`: every region (non-empty, including `local`). */
  constructor(
    readonly local: string,
    regions: readonly string[],
    rules: readonly RegionHomeRule[] = [],
  ) {
    if (!regions.includes(local)) throw new Error(`region ${local} is not one of the regions (${regions.join(',')})`);
    this.regions = [...regions];
    this.rules = rules.map((r) => ({ tenant: r.tenant, rooms: compilePatterns(r.rooms), region: r.region }));
  }

  /** The home region of a room. */
  homeOf(tenant: string, room: string): string {
    const key = `${tenant}/${room}`;
    let home = this.cache.get(key);
    if (home === undefined) {
      home = this.rules.find((r) => (r.tenant === '*' || r.tenant === tenant) && r.rooms(room))?.region ?? hashHome(this.regions, tenant, room);
      if (this.cache.size >= CACHE_MAX) this.cache = new Map();
      this.cache.set(key, home);
    }
    return home;
  }

  /** Whether this node's region is the room's home. */
  isLocal(tenant: string, room: string): boolean {
    return this.homeOf(tenant, room) === this.local;
  }
}

/** The hash fallback: the region with the highest score for `tenant/room` (ties, which need equal 32-bit scores, to the smaller name). */
export function hashHome(regions: readonly string[], tenant: string, room: string): string {
  let best = '';
  let bestScore = -1;
  for (const region of regions) {
    const score = rendezvousScore(region, `${tenant}/${room}`);
    if (score > bestScore || (score === bestScore && region < best)) {
      best = region;
      bestScore = score;
    }
  }
  if (best === '') throw new Error('no regions to home a room in');
  return best;
}

/**
 * A 32-bit score of (region, room key): FNV-1a over the UTF-8 bytes of `region`, a 0 byte and the key, then
 * murmur3's finaliser so that nearby names spread. Part of the deployment's contract: every node and every
 * version must compute the same value (test/unit/region-homes.test.ts pins some).
 */
export function rendezvousScore(region: string, key: string): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(`${region}\u0000${key}`, 'utf8');
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
