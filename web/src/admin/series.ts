/**
 * Turns successive cluster snapshots into chart points: rates from the nodes' cumulative counters (a node
 * that restarted, whose counters went back, counts from zero), latency as the worst node's percentiles.
 */
import type { ClusterView } from '../../../src/http/admin-types.js';

export interface Point {
  t: number;
  published: number;
  delivered: number;
  reconnects: number;
  slowConsumers: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

type Counters = ClusterView['nodes'][number]['counters'];
const KEEP = 90;

export class Series {
  readonly points: Point[] = [];
  private last = new Map<string, { at: number; counters: Counters; startedAt: number }>();

  add(view: ClusterView): Point {
    const p: Point = { t: view.now, published: 0, delivered: 0, reconnects: 0, slowConsumers: 0, p50: null, p95: null, p99: null };
    const next = new Map<string, { at: number; counters: Counters; startedAt: number }>();
    for (const n of view.nodes) {
      const prev = this.last.get(n.node);
      next.set(n.node, { at: n.lastHeardMs, counters: n.counters, startedAt: n.startedAt });
      if (n.latencyMs !== null) {
        p.p50 = Math.max(p.p50 ?? 0, n.latencyMs.p50);
        p.p95 = Math.max(p.p95 ?? 0, n.latencyMs.p95);
        p.p99 = Math.max(p.p99 ?? 0, n.latencyMs.p99);
      }
      if (prev === undefined || n.lastHeardMs <= prev.at) continue;
      const base = prev.startedAt === n.startedAt ? prev.counters : { published: 0, delivered: 0, reconnects: 0, slowConsumers: 0 };
      const dt = (n.lastHeardMs - prev.at) / 1000;
      const rate = (k: keyof Counters): number => Math.max(0, n.counters[k] - base[k]) / dt;
      p.published += rate('published');
      p.delivered += rate('delivered');
      p.reconnects += rate('reconnects');
      p.slowConsumers += rate('slowConsumers');
    }
    for (const [node, v] of this.last) if (!next.has(node)) next.set(node, v); // a node missing once keeps its base
    this.last = next;
    this.points.push(p);
    if (this.points.length > KEEP) this.points.shift();
    return p;
  }
}
