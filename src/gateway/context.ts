import type { Authenticator } from '../auth/authenticator.js';
import type { Config } from '../config/schema.js';
import type { Engines } from '../engines/engines.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Outbox } from './outbox.js';
import type { Publisher } from '../messaging/publisher.js';
import type { RoomRegistry } from '../rooms/rooms.js';
import type { Services } from '../services/services.js';
import type { UserRouter } from '../rooms/users.js';

/** Everything a connection's session needs from its node, passed explicitly (no module state). */
export interface NodeContext {
  readonly nodeId: string;
  readonly config: Config;
  readonly engines: Engines;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly auth: Authenticator;
  readonly outbox: Outbox;
  readonly rooms: RoomRegistry;
  readonly users: UserRouter;
  readonly publisher: Publisher;
  /** Client → backend services (send / rpc frames). */
  readonly services: Services;
}
