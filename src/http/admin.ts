/**
 * The admin API behind the /admin page (API key in `Authorization: Bearer`, like the backend API; open in
 * --dev without --api-key, as announced at start-up):
 *   GET /api/admin/cluster   every node heard over the backplane with its figures, and the busiest rooms
 *
 * Rooms are merged across nodes: members are summed (each node counts its local members), the message rate
 * is the highest any node saw (every node with members receives every message of the room).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DirectoryEntry } from '../engines/backplane/directory.js';
import type { ClusterView, NodeInfo, RoomStat } from './admin-types.js';
import { HttpError, sendJson } from './respond.js';

/** What the admin API reads: the node directory of this node. */
export interface AdminSource {
  readonly nodeId: string;
  readonly announceIntervalMs: number;
  nodes(): DirectoryEntry<NodeInfo>[];
}

export const TOP_CLUSTER_ROOMS = 10;

export class AdminApi {
  constructor(
    private readonly source: AdminSource,
    private readonly authorize: (req: IncomingMessage) => void,
  ) {}

  /** Returns the route label for metrics, or null when the path is not an admin route. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): string | null {
    if (path !== '/api/admin/cluster') return null;
    if (req.method !== 'GET') throw new HttpError(405, 'bad_request', 'use GET');
    this.authorize(req);
    sendJson(res, 200, this.cluster(), { 'cache-control': 'no-store' });
    return 'admin';
  }

  cluster(): ClusterView {
    const entries = this.source.nodes();
    const rooms = new Map<string, RoomStat & { nodes: number }>();
    for (const e of entries) {
      for (const r of e.info.topRooms) {
        const key = `${r.tenant}/${r.room}`;
        const seen = rooms.get(key);
        if (seen === undefined) rooms.set(key, { ...r, nodes: 1 });
        else rooms.set(key, { ...seen, members: seen.members + r.members, rate: Math.max(seen.rate, r.rate), nodes: seen.nodes + 1 });
      }
    }
    return {
      node: this.source.nodeId,
      announceIntervalMs: this.source.announceIntervalMs,
      now: Date.now(),
      nodes: entries.map((e) => ({ ...e.info, node: e.node, lastHeardMs: e.lastHeardMs, self: e.self })),
      rooms: [...rooms.values()].sort((a, b) => b.members - a.members || b.rate - a.rate).slice(0, TOP_CLUSTER_ROOMS),
    };
  }
}
