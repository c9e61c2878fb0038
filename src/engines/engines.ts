import type { Backplane } from './backplane/backplane.js';
import type { DurableLog } from './durablelog/durablelog.js';
import type { MessageStore } from './messagestore/messagestore.js';
import type { PresenceStore } from './presence/presence.js';
import type { RoomLog } from './roomlog/roomlog.js';

/** The five engines a node runs on (ARCHITECTURE.md §3). */
export interface Engines {
  readonly backplane: Backplane;
  readonly presence: PresenceStore;
  readonly roomLog: RoomLog;
  readonly durableLog: DurableLog;
  readonly store: MessageStore;
}
