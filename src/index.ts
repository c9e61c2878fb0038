/**
 * Switchboard server package: run a node programmatically, or implement an engine.
 * The CLI (`switchboard start`) is the usual entry point; see README.md.
 */
export { startNode, type RunningNode, type StartOptions } from './node/node.js';
export { loadConfig, redactConfig, ConfigError } from './config/load.js';
export { configSchema, type Config, type ConfigInput } from './config/schema.js';
export type { Engines } from './engines/engines.js';
export type { Backplane, BackplaneSubscription } from './engines/backplane/backplane.js';
export type { PresenceStore, PresenceConn, RoomMember, UserPresence } from './engines/presence/presence.js';
export type { RoomLog, PublishInput, AppendResult, RecoveryResult } from './engines/roomlog/roomlog.js';
export type { DurableLog, DurableConsumer, ConsumeOptions } from './engines/durablelog/durablelog.js';
export type { MessageStore, HistoryQuery, HistoryPage } from './engines/messagestore/messagestore.js';
export type { Json, RoomMessage, RoomPosition, RoomRef } from './engines/types.js';
export { ErrorCodes, SwitchboardError, type ErrorCode } from './protocol/errors.js';
export { CloseCodes, isReconnectCode, isTerminalCloseCode } from './protocol/close-codes.js';
export { PROTOCOL_VERSION, type ClientFrame, type ServerFrame, type WireMessage } from './protocol/frames.js';
