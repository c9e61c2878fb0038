/**
 * What the WebSocket side (protocol v1 on /ws) needs from its node, passed to the Gateway by the node's
 * assembly (node/node.ts) and from there to each Session and Connection. Nothing here is module state.
 */
import type { Authenticator } from '../auth/authenticator.js';
import type { Config } from '../config/schema.js';
import type { Engines } from '../engines/engines.js';
import type { Edge } from '../messaging/edge.js';
import type { HoleFilling } from '../messaging/history-fill.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Hooks } from '../hooks/hooks.js';
import type { RoomRegistry } from '../rooms/rooms.js';
import type { UserRouter } from '../rooms/users.js';
import type { Services } from '../services/services.js';
import type { Outbox } from './outbox.js';
import type { ClientEventSink } from '../webhooks/producer.js';

/** The options the WebSocket side reads. */
export type GatewayConfig = Pick<
  Config,
  | 'maxFrameBytes'
  | 'maxConnections'
  | 'maxRoomsPerConnection'
  | 'maxBufferedBytes'
  | 'publishRatePerConnection'
  | 'maxConnectionsPerUser'
  | 'recoveryMaxGap'
  | 'pingIntervalMs'
  | 'pingTimeoutMs'
  | 'connectTimeoutMs'
  | 'slowConsumerMs'
  | 'presenceTtlMs'
  | 'drainTimeoutMs'
  | 'drainSpreadMs'
  | 'compression'
  | 'compressionThresholdBytes'
>;

export interface GatewayDeps {
  readonly nodeId: string;
  readonly config: GatewayConfig;
  /** Presence (connect, join, leave, heartbeat), the recent window for recovery, and the room subject for presence changes. */
  readonly engines: Pick<Engines, 'presence' | 'roomLog' | 'backplane' | 'revocations'>;
  /** Recovery beyond the window reads the store, and fills the store's holes from the durable log. */
  readonly holes: HoleFilling;
  readonly metrics: Metrics;
  /** The app backend's connect, join and publish hooks (hooks/hooks.ts). */
  readonly hooks: Hooks;
  readonly log: Logger;
  readonly auth: Authenticator;
  readonly outbox: Outbox;
  readonly rooms: RoomRegistry;
  readonly users: UserRouter;
  /** Publish, history and presence requests, and the counting of every error answered. */
  readonly edge: Edge;
  /** Client → backend services (send / rpc frames). */
  readonly services: Services;
  /** Client publishes, for webhooks (docs/hooks.md); absent when no webhook is configured. */
  readonly webhooks?: ClientEventSink;
}

/** What one Connection needs. */
export type ConnectionDeps = Pick<GatewayDeps, 'outbox' | 'edge'> & { readonly config: Pick<GatewayConfig, 'pingIntervalMs'> };
