/**
 * Prometheus metrics of one node, on its own registry (several nodes can live in one process in tests).
 * Labels are of bounded cardinality: no per-room, per-user or per-connection labels.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The wire protocols a node speaks (a label of the per-protocol series). */
export type WireProtocol = 'v1' | 'pusher';

export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({
    name: 'switchboard_connections',
    help: 'Open WebSocket connections (connected or awaiting connect).',
    registers: [this.registry],
  });
  readonly connectionsByProtocol = new Gauge({
    name: 'switchboard_protocol_connections',
    help: 'Open WebSocket connections by wire protocol: v1 (/ws) or pusher (/app/:key).',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly connectionsMax = new Gauge({ name: 'switchboard_connections_max', help: 'Configured maximum of open connections.', registers: [this.registry] });
  readonly rooms = new Gauge({ name: 'switchboard_rooms', help: 'Rooms with at least one member on this node.', registers: [this.registry] });
  readonly roomMemberships = new Gauge({
    name: 'switchboard_room_memberships',
    help: 'Room memberships of connections on this node.',
    registers: [this.registry],
  });
  readonly admission = new Counter({
    name: 'switchboard_admission_total',
    help: 'WebSocket upgrade attempts by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly published = new Counter({
    name: 'switchboard_messages_published_total',
    help: 'Room messages accepted on this node (new, not duplicates).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly duplicates = new Counter({
    name: 'switchboard_publish_duplicates_total',
    help: 'Publishes answered from the idempotency record.',
    registers: [this.registry],
  });
  readonly messagesIn = new Counter({ name: 'switchboard_frames_in_total', help: 'Frames received from clients.', registers: [this.registry] });
  readonly delivered = new Counter({
    name: 'switchboard_messages_delivered_total',
    help: 'Message frames queued to local members (one per member per message).',
    registers: [this.registry],
  });
  readonly socketWrites = new Counter({
    name: 'switchboard_socket_writes_total',
    help: 'Coalesced socket writes (one per connection per event-loop tick with output).',
    registers: [this.registry],
  });
  readonly socketBytes = new Counter({
    name: 'switchboard_socket_bytes_total',
    help: 'Bytes of frames written to client sockets by the outbox (both protocols; not the handshake or ws control frames).',
    registers: [this.registry],
  });
  readonly batchFrames = new Counter({
    name: 'switchboard_batch_frames_total',
    help: 'Batch frames written (several server frames in one WebSocket frame, to connections that opted in).',
    registers: [this.registry],
  });
  readonly batchedFrames = new Counter({
    name: 'switchboard_batched_frames_total',
    help: 'Server frames carried inside batch frames.',
    registers: [this.registry],
  });
  readonly deflateConnections = new Gauge({
    name: 'switchboard_deflate_connections',
    help: 'Open v1 connections that negotiated permessage-deflate and get compressed room messages.',
    registers: [this.registry],
  });
  readonly messagesCompressed = new Counter({
    name: 'switchboard_messages_compressed_total',
    help: 'Room message frames compressed (once per message for all members that negotiated permessage-deflate).',
    registers: [this.registry],
  });
  readonly compressionBytes = new Counter({
    name: 'switchboard_compression_bytes_total',
    help: 'Compressed room messages: their JSON bytes (stage json) and the payload bytes sent for them (stage sent).',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  readonly fanoutLatency = new Histogram({
    name: 'switchboard_publish_to_deliver_seconds',
    help: 'From seq assignment to the frame being queued to local members, per message per node.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly slowConsumers = new Counter({
    name: 'switchboard_slow_consumer_disconnects_total',
    help: 'Connections closed because their outbound buffer passed the bound.',
    registers: [this.registry],
  });
  readonly heartbeatTimeouts = new Counter({
    name: 'switchboard_heartbeat_timeouts_total',
    help: 'Connections closed for missing the pong deadline.',
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'switchboard_errors_total',
    help: 'Errors returned to clients and HTTP callers, by stable code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly disconnects = new Counter({
    name: 'switchboard_disconnects_total',
    help: 'Closed connections by close code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly recoveries = new Counter({
    name: 'switchboard_recoveries_total',
    help: 'Joins with a since position, by outcome.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly membersBehind = new Counter({
    name: 'switchboard_members_behind_total',
    help: 'Times a member of a conflate or drop room fell behind (its unsent output passed the bound): it is sent nothing until it reads again.',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });
  readonly catchups = new Counter({
    name: 'switchboard_catchups_total',
    help: 'Times a member that fell behind in a conflate or drop room read again and was caught up (a catchup or skipped frame).',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });
  readonly caughtUpMessages = new Counter({
    name: 'switchboard_catchup_messages_total',
    help: 'Messages of catch-ups: result="missed" the seqs members behind were not sent, result="sent" what they got instead.',
    labelNames: ['policy', 'result'] as const,
    registers: [this.registry],
  });
  readonly gapFetches = new Counter({
    name: 'switchboard_gap_fetches_total',
    help: 'Times a room stream waited for a missing seq and fetched it from the RoomLog.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly backplaneErrors = new Counter({
    name: 'switchboard_backplane_errors_total',
    help: 'Backplane publish or subscribe failures.',
    registers: [this.registry],
  });
  readonly regionForwards = new Counter({
    name: 'switchboard_region_forwards_total',
    help: 'Publishes this node forwarded to the home region of their room (docs/scaling.md "Regions"), by home and result: ok, an error code, or no_responders / timeout / failed when the home did not answer.',
    labelNames: ['home', 'result'] as const,
    registers: [this.registry],
  });
  readonly hookRequests = new Counter({
    name: 'switchboard_hook_requests_total',
    help: 'Requests to the app backend hooks (connect, join, publish) by result: allow, deny, error, timeout, overloaded.',
    labelNames: ['hook', 'result'] as const,
    registers: [this.registry],
  });
  readonly hookSeconds = new Histogram({
    name: 'switchboard_hook_seconds',
    help: 'Time to an answer (or failure) of a backend hook.',
    labelNames: ['hook'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly tokenRefreshes = new Counter({
    name: 'switchboard_token_refreshes_total',
    help: 'refresh frames (a newer token on an open connection) by result: ok or the error code.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly sequenceFences = new Counter({
    name: 'switchboard_sequence_fences_total',
    help: "Rooms whose sequence the RoomLog found behind the durable log's newest seq (a Redis failover to a lagging replica) and moved past it.",
    registers: [this.registry],
  });
  readonly httpAborted = new Counter({
    name: 'switchboard_http_aborted_total',
    help: 'HTTP requests the client abandoned before its body was read (disconnected mid-body).',
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'switchboard_http_requests_total',
    help: 'HTTP API requests by route and status class.',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly historyLagMessages = new Gauge({
    name: 'switchboard_history_lag_messages',
    help: 'Messages in the durable log not yet in the message store.',
    registers: [this.registry],
  });
  readonly historyLagSeconds = new Gauge({
    name: 'switchboard_history_lag_seconds',
    help: 'Age of the oldest message not yet in the message store.',
    registers: [this.registry],
  });
  readonly historyWritten = new Counter({
    name: 'switchboard_history_written_total',
    help: 'Messages written to the message store by this node.',
    registers: [this.registry],
  });
  readonly serviceRequests = new Counter({
    name: 'switchboard_service_requests_total',
    help: 'Client send/rpc frames to backend services by kind (send, send_durable, rpc) and result (ok or error code).',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly historyFailures = new Counter({
    name: 'switchboard_history_write_failures_total',
    help: 'Failed history batch writes (retried).',
    registers: [this.registry],
  });
  readonly historyHoles = new Counter({
    name: 'switchboard_history_holes_total',
    help: 'History reads (pages, recoveries) that met seqs the message store lacked, by result: filled (from the durable log or a store re-read), skipped (never acked), unavailable (answered 503 / unavailable).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  // Seed 004's dashboard figures not covered above (issue 7). Room sizes are histograms and bucketed
  // gauges, never per-room labels; the busiest rooms by name are on the admin API (top-N) instead.
  readonly reconnects = new Counter({
    name: 'switchboard_reconnects_total',
    help: 'Connections that resumed a room with a since position (a client coming back after a drop).',
    registers: [this.registry],
  });
  readonly fanoutSize = new Histogram({
    name: 'switchboard_fanout_members',
    help: 'Local members a room message was queued to, per message per node.',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
    registers: [this.registry],
  });
  readonly roomsBySize = new Gauge({
    name: 'switchboard_rooms_by_size',
    help: 'Rooms on this node by local member count bucket.',
    labelNames: ['size'] as const,
    registers: [this.registry],
  });
  readonly largestRoom = new Gauge({
    name: 'switchboard_largest_room_members',
    help: 'Local members of the largest room on this node.',
    registers: [this.registry],
  });
  readonly brokerLatency = new Histogram({
    name: 'switchboard_backplane_publish_seconds',
    help: 'Backplane publish until the broker confirmed it (NATS flush / Redis PUBLISH reply).',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  private readonly resumed = new WeakSet<object>();
  readonly clusterNodes = new Gauge({
    name: 'switchboard_cluster_nodes',
    help: 'Nodes this node has heard announce themselves within the expiry (itself included).',
    registers: [this.registry],
  });

  readonly webhookEvents = new Counter({
    name: 'switchboard_webhook_events_total',
    help: 'Webhook events this node decided and queued (each is decided by one node of the cluster), by event.',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });
  readonly webhookRequests = new Counter({
    name: 'switchboard_webhook_requests_total',
    help: 'Webhook POSTs this node sent, by result: ok (2xx), status (another answer), error (no answer: refused, reset, timeout).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly webhookDelivered = new Counter({
    name: 'switchboard_webhook_delivered_total',
    help: 'Webhook events delivered (in a request answered 2xx) by this node.',
    registers: [this.registry],
  });
  readonly webhookDeadLetters = new Counter({
    name: 'switchboard_webhook_dead_letters_total',
    help: 'Webhook events given up on after the retry deadline (logged with their ids, then dropped).',
    registers: [this.registry],
  });
  readonly webhookErrors = new Counter({
    name: 'switchboard_webhook_errors_total',
    help: 'Webhook work that failed and is retried: settle (presence store) or queue (the work queue refused an event).',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  readonly webhookQueueDepth = new Gauge({
    name: 'switchboard_webhook_queue_depth',
    help: 'Webhook events queued and not yet delivered or dead-lettered (the whole queue as this node sees it).',
    registers: [this.registry],
  });
  readonly webhookLatency = new Histogram({
    name: 'switchboard_webhook_delivery_seconds',
    help: 'From a webhook event being decided to its request being answered 2xx.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  /**
   * `eventLoopResolutionMs`: resolution of the event-loop delay monitor behind
   * `switchboard_nodejs_eventloop_lag_*_seconds` (default 10). Those gauges cover the time since the previous
   * scrape (the monitor is reset at each), so `…_lag_max_seconds` is the longest stall since then, plus up to
   * one resolution.
   */
  constructor(labels: { node: string }, options: { eventLoopResolutionMs?: number } = {}) {
    this.registry.setDefaultLabels({ node: labels.node });
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_', eventLoopMonitoringPrecision: options.eventLoopResolutionMs ?? 10 });
  }

  /** Counts a connection in `reconnects` the first time it resumes a room with a since position. */
  /** A connection opened, on either protocol (the total and the protocol's gauge move together). */
  connectionOpened(protocol: WireProtocol): void {
    this.connections.inc();
    this.connectionsByProtocol.inc({ protocol });
  }

  /** One room message compressed: its JSON bytes and the payload bytes sent for it. */
  compressed(jsonBytes: number, sentBytes: number): void {
    this.messagesCompressed.inc();
    this.compressionBytes.inc({ stage: 'json' }, jsonBytes);
    this.compressionBytes.inc({ stage: 'sent' }, sentBytes);
  }

  /** A connection closed with this close-code label. */
  connectionClosed(protocol: WireProtocol, code: string): void {
    this.connections.dec();
    this.connectionsByProtocol.dec({ protocol });
    this.disconnects.inc({ code });
  }

  noteReconnect(connection: object): void {
    if (this.resumed.has(connection)) return;
    this.resumed.add(connection);
    this.reconnects.inc();
  }

  error(code: string): void {
    this.errors.inc({ code });
  }
}
