/**
 * `@switchboard/backend` (packages/backend): the service SDK on NATS (docs/backend.md).
 */
export { service, BackendError } from './service.js';
export type { Handler, PresenceResult, PublishOptions, RoomPublishResult, Service, ServiceMessage, ServiceOptions } from './service.js';
export type { QueueLimits } from './streams.js';
export type { DeadLetter, ServiceRequest } from './wire.js';
export { DEAD_LETTER_STREAM, deadLetterSubject, parseTopic } from './wire.js';
