/**
 * `@switchboard/client` (packages/client), the Switchboard client SDK for browsers and Node:
 * `connect(url, options)` → `Client`; `client.room(name)` → `Room`.
 * docs/client.md describes the API, the state machine, reconnects and the delivery guarantees.
 */
export { connect, Client, type Room } from './client.js';
export type { ConnectedInfo } from './connection.js';
export { SwitchboardClientError, ClientErrorCodes, type ClientErrorCode, type SwitchboardErrorCode } from './errors.js';
export { backoffDelay, backoffWindow, defaultBackoff, type BackoffOptions } from './backoff.js';
export type {
  ClientEvents,
  ClientOptions,
  ConnectionState,
  DirectMessage,
  HistoryPage,
  HistoryQuery,
  JoinedEvent,
  Json,
  Message,
  Position,
  PresenceDiff,
  PresenceMember,
  PublishResult,
  SendResult,
  ResetEvent,
  RoomEvents,
  RoomOptions,
  StateChange,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
