/** The admin page's chart arithmetic (web/src/admin/series.ts): rates from cumulative node counters. */
import { describe, expect, it } from 'vitest';
import type { ClusterView } from '../../src/http/admin-types.js';
import { Series } from '../../web/src/admin/series.js';

type NodeView = ClusterView['nodes'][number];

function node(name: string, at: number, published: number, extra: Partial<NodeView> = {}): NodeView {
  return {
    node: name,
    startedAt: 1000,
    uptimeS: 1,
    backplane: 'nats',
    connections: 1,
    maxConnections: 10,
    rssBytes: 1,
    heapUsedBytes: 1,
    cpuPercent: 1,
    rooms: 1,
    counters: { published, delivered: published * 2, reconnects: 0, slowConsumers: 0 },
    latencyMs: null,
    topRooms: [],
    lastHeardMs: at,
    self: false,
    ...extra,
  };
}
const view = (now: number, nodes: NodeView[]): ClusterView => ({ node: 'a', announceIntervalMs: 2000, now, nodes, rooms: [] });

describe('admin chart series', () => {
  it('sums per-node rates from counter deltas, ignores a repeated announcement, and counts a restarted node from zero', () => {
    const s = new Series();
    expect(s.add(view(0, [node('a', 0, 100), node('b', 0, 50)])).published).toBe(0); // no previous snapshot yet
    expect(s.add(view(2000, [node('a', 2000, 120), node('b', 2000, 60)]))).toMatchObject({ published: 15, delivered: 30 });
    expect(s.add(view(3000, [node('a', 2000, 120), node('b', 2000, 60)])).published).toBe(0); // same announcements again
    const restarted = node('b', 4000, 8, { startedAt: 5000 });
    expect(s.add(view(4000, [node('a', 4000, 120), restarted])).published).toBe(4); // b: 8 since its restart, over 2 s
    expect(s.points).toHaveLength(4);
  });

  it('takes the worst node latency percentiles and keeps at most 90 points', () => {
    const s = new Series();
    const lat = (p: number) => ({ p50: p, p95: p * 2, p99: p * 3, samples: 10 });
    const p = s.add(view(0, [node('a', 0, 0, { latencyMs: lat(2) }), node('b', 0, 0, { latencyMs: lat(5) }), node('c', 0, 0)]));
    expect(p).toMatchObject({ p50: 5, p95: 10, p99: 15 });
    for (let i = 1; i <= 100; i++) s.add(view(i * 2000, [node('a', i * 2000, i)]));
    expect(s.points).toHaveLength(90);
    expect(s.points[89]!.p50).toBeNull();
  });
});
