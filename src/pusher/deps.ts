/**
 * What the Pusher side (protocol 7 on /app/:key, the HTTP API on /apps/:id) needs from its node: the same
 * engines, edge, rooms, outbox and admission as protocol v1 on /ws, so both protocols share one node's rooms,
 * ordering, presence and bounds.
 */
import type { Config } from '../config/schema.js';
import type { Engines } from '../engines/engines.js';
import type { Admission } from '../gateway/admission.js';
import type { Outbox } from '../gateway/outbox.js';
import type { Edge } from '../messaging/edge.js';
import type { HoleFilling } from '../messaging/history-fill.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoomRegistry } from '../rooms/rooms.js';
import type { UserRouter } from '../rooms/users.js';
import type { ClientEventSink } from '../webhooks/producer.js';

export type PusherConfig = Pick<
  Config,
  | 'pusherApps'
  | 'pusherActivityTimeoutS'
  | 'maxConnections'
  | 'maxRoomsPerConnection'
  | 'maxHttpBodyBytes'
  | 'pingTimeoutMs'
  | 'presenceTtlMs'
  | 'drainSpreadMs'
  | 'drainTimeoutMs'
  | 'recoveryMaxGap'
  | 'maxBufferedBytes'
>;

export interface PusherDeps {
  readonly nodeId: string;
  readonly config: PusherConfig;
  readonly engines: Pick<Engines, 'presence' | 'backplane' | 'roomLog'>;
  /** Resumed subscriptions beyond the recent window read the store and fill its holes from the durable log. */
  readonly holes: HoleFilling;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly outbox: Outbox;
  readonly rooms: RoomRegistry;
  /** Signed-in users' events and terminate orders, from any node. */
  readonly users: UserRouter;
  readonly edge: Edge;
  /** The node's admission control, shared with protocol v1. */
  readonly admission: Admission;
  /** Open connections of the node, both protocols (for the node's connection ceiling). */
  readonly openConnections: () => number;
  /** Client events, for webhooks (docs/hooks.md); absent when no webhook is configured. */
  readonly webhooks?: ClientEventSink;
}
