/**
 * The admin API's JSON (GET /api/admin/cluster) and the node announcement it is built from. Types only
 * and dependency-free, so the browser admin page (web/src/admin) shares them with the server.
 */

/** One room as one node sees it. */
export interface RoomStat {
  tenant: string;
  room: string;
  /** Members connected to this node. */
  members: number;
  /** Messages per second in the last interval. */
  rate: number;
}

/** What a node announces about itself every interval (node/node-stats.ts builds it). */
export interface NodeInfo {
  node: string;
  startedAt: number;
  uptimeS: number;
  backplane: string;
  connections: number;
  maxConnections: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Process CPU over the last interval, percent of one core. */
  cpuPercent: number;
  rooms: number;
  /** Cumulative since the node started (compare two snapshots for a rate). */
  counters: { published: number; delivered: number; reconnects: number; slowConsumers: number };
  /** Publish-to-deliver latency of messages delivered in the last interval, ms (null without any). */
  latencyMs: { p50: number; p95: number; p99: number; samples: number } | null;
  topRooms: RoomStat[];
}

export interface ClusterView {
  /** The node that answered. */
  node: string;
  announceIntervalMs: number;
  now: number;
  nodes: (NodeInfo & { lastHeardMs: number; self: boolean })[];
  /** Busiest rooms of the cluster: members summed over nodes, rate the highest any node saw. */
  rooms: (RoomStat & { nodes: number })[];
}
