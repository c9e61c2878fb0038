import type { Backplane } from './backplane/backplane.js';
import type { DurableLog } from './durablelog/durablelog.js';
import type { MessageStore } from './messagestore/messagestore.js';
import type { PresenceStore } from './presence/presence.js';
import type { RevocationStore } from './revocations/revocations.js';
import type { RoomLog } from './roomlog/roomlog.js';

/** The engines a node runs on (ARCHITECTURE.md §3): the five of the message path, and revoked tokens. */
export interface Engines {
  readonly backplane: Backplane;
  readonly presence: PresenceStore;
  readonly roomLog: RoomLog;
  readonly durableLog: DurableLog;
  readonly store: MessageStore;
  readonly revocations: RevocationStore;
}
