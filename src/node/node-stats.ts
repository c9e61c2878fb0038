/**
 * NodeStats: the figures one node announces about itself (admin page) and the room-size metrics.
 *
 * Fed by the room delivery hook (`delivered`), it keeps, per announcement interval, the publish-to-deliver
 * latency samples (bounded reservoir) and per-room message counts; `snapshot()` turns them into
 * percentiles and rates and starts the next interval. Cumulative counters come from the Prometheus
 * registry, so the admin page and Prometheus show the same numbers.
 */
import { roomKey, type RoomMessage } from '../engines/types.js';
import type { NodeInfo, RoomStat } from '../http/admin-types.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoomRegistry } from '../rooms/rooms.js';

export type { NodeInfo, RoomStat };

/** How many rooms a node announces (its busiest by local members, then by message rate). */
export const TOP_ROOMS = 10;
const MAX_SAMPLES = 4096;
const SIZE_BUCKETS: readonly [string, number][] = [
  ['1', 1],
  ['2-10', 10],
  ['11-100', 100],
  ['101-1000', 1000],
  ['1001+', Infinity],
];

export class NodeStats {
  private readonly startedAt = Date.now();
  private samples: number[] = [];
  private seen = 0;
  private counts = new Map<string, number>();
  private lastAt = Date.now();
  private lastCpu = process.cpuUsage();

  constructor(
    private readonly nodeId: string,
    private readonly metrics: Metrics,
    private readonly rooms: RoomRegistry,
    private readonly maxConnections: number,
    private readonly backplaneKind: string,
  ) {}

  /** Called once per room message per node when it was queued to `members` local members. */
  delivered(m: RoomMessage, members: number): void {
    const ms = Math.max(0, Date.now() - m.ts);
    // Reservoir sampling keeps the percentiles unbiased without unbounded memory on busy nodes.
    this.seen++;
    if (this.samples.length < MAX_SAMPLES) this.samples.push(ms);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < MAX_SAMPLES) this.samples[j] = ms;
    }
    const key = roomKey(m);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.metrics.fanoutSize.observe(members);
  }

  /** Figures of the interval since the previous snapshot; starts the next one. Updates room-size gauges. */
  async snapshot(): Promise<NodeInfo> {
    const now = Date.now();
    const elapsedS = Math.max(0.001, (now - this.lastAt) / 1000);
    const cpu = process.cpuUsage();
    const cpuPercent = ((cpu.user - this.lastCpu.user + cpu.system - this.lastCpu.system) / 1e6 / elapsedS) * 100;
    const samples = this.samples.sort((a, b) => a - b);
    const counts = this.counts;
    this.samples = [];
    this.seen = 0;
    this.counts = new Map();
    this.lastAt = now;
    this.lastCpu = cpu;

    const stats: RoomStat[] = [];
    const bySize = new Map<string, number>(SIZE_BUCKETS.map(([label]) => [label, 0]));
    let largest = 0;
    for (const room of this.rooms.list()) {
      const members = room.members.size;
      largest = Math.max(largest, members);
      const bucket = SIZE_BUCKETS.find(([, max]) => members <= max);
      if (bucket !== undefined && members > 0) bySize.set(bucket[0], bySize.get(bucket[0])! + 1);
      stats.push({ tenant: room.ref.tenant, room: room.ref.room, members, rate: round((counts.get(roomKey(room.ref)) ?? 0) / elapsedS) });
    }
    for (const [size, n] of bySize) this.metrics.roomsBySize.set({ size }, n);
    this.metrics.largestRoom.set(largest);
    stats.sort((a, b) => b.members - a.members || b.rate - a.rate);

    const mem = process.memoryUsage();
    const pct = (p: number): number => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!;
    return {
      node: this.nodeId,
      startedAt: this.startedAt,
      uptimeS: Math.round((now - this.startedAt) / 1000),
      backplane: this.backplaneKind,
      connections: await total(this.metrics.connections),
      maxConnections: this.maxConnections,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      cpuPercent: round(cpuPercent),
      rooms: this.rooms.size,
      counters: {
        published: await total(this.metrics.published),
        delivered: await total(this.metrics.delivered),
        reconnects: await total(this.metrics.reconnects),
        slowConsumers: await total(this.metrics.slowConsumers),
      },
      latencyMs: samples.length === 0 ? null : { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), samples: samples.length },
      topRooms: stats.slice(0, TOP_ROOMS),
    };
  }
}

const round = (x: number): number => Math.round(x * 100) / 100;

async function total(metric: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await metric.get()).values.reduce((s, v) => s + v.value, 0);
}
