/**
 * The one configuration schema. Every option can come from a flag (`--max-frame-bytes`), an
 * environment variable (`SWITCHBOARD_MAX_FRAME_BYTES`, plus the conventional NATS_URL, REDIS_URL,
 * DATABASE_URL) or a JSON config file (`--config file.json`, keys in camelCase); flags win over env,
 * env over the file, the file over defaults. See docs/operations.md for the full table.
 */
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65_535);
const positiveInt = z.coerce.number().int().positive();
const bool = z.preprocess((v) => (typeof v === 'string' ? !['false', '0', 'no', ''].includes(v.toLowerCase()) : v), z.boolean());

/** Webhook event names (docs/hooks.md); the Pusher format calls the room ones channel_occupied / channel_vacated. */
export const WEBHOOK_EVENTS = ['room_occupied', 'room_vacated', 'member_added', 'member_removed', 'client_event'] as const;

/** What one webhook URL receives: its events, in which rooms, and (opt-in) which rooms' client events. */
const webhookTargetFields = {
  url: z.url(),
  /** Events sent (client_event only for rooms matching `clientEventRooms`). Default: every presence-derived one. */
  events: z.array(z.enum(WEBHOOK_EVENTS)).default(['room_occupied', 'room_vacated', 'member_added', 'member_removed']),
  /** Room patterns (`*` matches any run of characters) whose occupancy and member events are sent. Default all. */
  rooms: z.array(z.string().min(1)).default(['*']),
  /** Room patterns whose client events (a Pusher `client-*` event; a v1 client publish) are sent. Default none. */
  clientEventRooms: z.array(z.string().min(1)).default([]),
};

/** A Pusher app's webhook: a URL (every presence-derived event of every channel) or the full form. Signed with the app secret. */
export const pusherWebhookSchema = z.union([
  z.url().transform((url) => ({ url, events: [...WEBHOOK_EVENTS.slice(0, 4)], rooms: ['*'], clientEventRooms: [] as string[] })),
  z.object(webhookTargetFields).strict(),
]);

/** A native tenant's webhook (protocol v1 rooms), signed with its own secret (docs/hooks.md). */
export const tenantWebhookSchema = z
  .object({
    tenant: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'tenant: 1–64 of A–Z a–z 0–9 _ -'),
    secret: z.string().min(16, 'webhook secret: at least 16 characters'),
    ...webhookTargetFields,
  })
  .strict();

export type WebhookTarget = z.infer<typeof tenantWebhookSchema>;

/** How a room delivers to members that read slower than it is published to (docs/operations.md "Delivery policies"). */
export const DELIVERY_POLICIES = ['ordered', 'conflate', 'drop'] as const;

/**
 * One rule of `roomPolicies`: the rooms it covers (a tenant, or every tenant; room patterns where `*` matches any
 * run of characters) and what they get. The first rule that matches a room decides; rooms no rule matches are
 * `ordered` without a publish cap.
 */
export const roomPolicySchema = z
  .object({
    /** A tenant (a Pusher app's id), or `*` for every tenant. */
    tenant: z
      .string()
      .regex(/^(\*|[A-Za-z0-9_-]{1,64})$/, 'tenant: * or 1–64 of A–Z a–z 0–9 _ -')
      .default('*'),
    rooms: z.array(z.string().min(1)).min(1).default(['*']),
    delivery: z.enum(DELIVERY_POLICIES).default('ordered'),
    /** Publishes the room accepts per second, cluster-wide (a one-second window in the RoomLog); 0: no cap. */
    maxPublishRate: z.number().int().min(0).default(0),
    /** `conflate`: keys whose newest message a node keeps per room for members that fall behind. */
    conflateKeys: z.number().int().min(1).max(1_000_000).default(10_000),
  })
  .strict();

export type RoomPolicyRule = z.infer<typeof roomPolicySchema>;

/** A region's name: its NATS cluster's name in the supercluster, a subject token and part of a stream name. */
export const REGION_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const REGION_NAME_RULE = 'region: 1–32 of a–z 0–9 _ -, starting with a letter (the name of its NATS cluster)';

/**
 * One rule of `regionHomes` (docs/scaling.md "Regions"): the rooms it covers (a tenant, or every tenant; room
 * patterns where `*` matches any run of characters) and their home region. The first rule that matches decides;
 * rooms no rule matches are homed by hashing over `regions`.
 */
export const regionHomeSchema = z
  .object({
    tenant: z
      .string()
      .regex(/^(\*|[A-Za-z0-9_-]{1,64})$/, 'tenant: * or 1–64 of A–Z a–z 0–9 _ -')
      .default('*'),
    rooms: z.array(z.string().min(1)).min(1),
    region: z.string().regex(REGION_NAME, REGION_NAME_RULE),
  })
  .strict();

export type RegionHomeRule = z.infer<typeof regionHomeSchema>;

/** A value from a config file, or its JSON text from a flag or variable. */
const jsonText = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v; // reported by the schema's own check, with the option's name
    }
  }, schema);
const jsonArray = <T extends z.ZodType>(item: T) => jsonText(z.array(item));

/**
 * One Pusher app (docs/pusher.md): the app id is the tenant its channels are rooms of; the key is in the
 * WebSocket path (`/app/:key`), the secret signs channel authorizations and HTTP API requests.
 */
export const pusherAppSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'app id: 1–64 of A–Z a–z 0–9 _ - (it is the tenant)'),
    key: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'app key: 1–64 of A–Z a–z 0–9 _ -'),
    secret: z.string().min(8, 'app secret: at least 8 characters'),
    /** Whether clients may send `client-*` events on private and presence channels. */
    clientEvents: z.boolean().default(false),
    /** Client events one connection may send per second (Pusher's 10). */
    clientEventsPerSecond: z.number().int().positive().default(10),
    /** Most connections of this app on one node (the node's maxConnections bounds all apps together). */
    maxConnections: z.number().int().positive().optional(),
    /** Most users in one presence channel (Pusher's 100). */
    maxPresenceMembers: z.number().int().positive().default(100),
    /** Largest event `data`, bytes (Pusher's 10 KB). */
    maxEventBytes: z.number().int().positive().default(10_240),
    /** Where webhooks go, in Pusher's format signed with the app secret (docs/hooks.md). */
    webhooks: z.array(pusherWebhookSchema).default([]),
  })
  .strict();

export type PusherApp = z.infer<typeof pusherAppSchema>;

const pusherAppsSchema = jsonArray(pusherAppSchema);

/** One hook of the app's backend (src/hooks/hooks.ts, docs/hooks.md). */
const hookSchema = z
  .object({
    /** `http(s)://…` (JSON POST) or `nats:<subject>` (a NATS request, needs --nats). */
    url: z.string().regex(/^(https?:\/\/\S+|nats:[A-Za-z0-9_.>*-]+)$/, 'a hook url is http(s)://… or nats:<subject>'),
    timeoutMs: z.number().int().positive().default(2_000),
    /** Requests in flight at most; beyond, the request fails like a backend that is down. */
    concurrency: z.number().int().positive().default(64),
    /** A backend that does not answer lets the request through (default: refuses it, `unavailable`). */
    failOpen: z.boolean().default(false),
  })
  .strict();

export type HookConfig = z.infer<typeof hookSchema>;

const hooksSchema = jsonText(
  z
    .object({
      /** Only for connects without a token; it cannot fail open (there is no identity without an answer). */
      connect: hookSchema
        .extend({
          /** Upgrade request headers sent to the hook (e.g. `authorization`). */
          headers: z
            .array(z.string().regex(/^[A-Za-z0-9-]{1,64}$/))
            .max(32)
            .default([]),
          /** Cookies sent to the hook (e.g. the app's session cookie). */
          cookies: z
            .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/))
            .max(32)
            .default([]),
          failOpen: z.literal(false).default(false),
        })
        .strict()
        .optional(),
      join: hookSchema.optional(),
      publish: hookSchema.optional(),
    })
    .strict(),
);

export const configSchema = z
  .object({
    port: port.default(8080),
    host: z.string().default('0.0.0.0'),
    nodeId: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'node id: 1–64 of A–Z a–z 0–9 _ -')
      .optional(),
    dataDir: z.string().default('./data'),
    /**
     * Embedded history store (without --database): `sqlite` (default; `<dataDir>/history.sqlite`, written by a
     * worker thread) or `pglite` (the previous default: `<dataDir>/history/`, on the event loop). Neither reads
     * the other's data.
     */
    embeddedStore: z.enum(['sqlite', 'pglite']).default('sqlite'),
    dev: bool.default(false),
    /** Cluster engines (used by the cluster issue; embedded engines when absent). */
    nats: z.string().optional(),
    redis: z.string().optional(),
    database: z.string().optional(),
    /** Node-to-node pub/sub: `nats` (default with --nats) or `redis` (Redis pub/sub, for comparison). */
    backplane: z.enum(['nats', 'redis']).optional(),
    natsCredsFile: z.string().optional(),
    natsTlsCaFile: z.string().optional(),
    natsTlsCertFile: z.string().optional(),
    natsTlsKeyFile: z.string().optional(),
    redisTlsCaFile: z.string().optional(),
    redisTlsCertFile: z.string().optional(),
    redisTlsKeyFile: z.string().optional(),
    /**
     * Durable log in cluster mode: `jetstream` (default with --nats) or `memory` (the node's in-process queue,
     * acks wait for PostgreSQL; the default without NATS).
     */
    durableLog: z.enum(['jetstream', 'memory']).optional(),
    /** JetStream durable log (cluster mode with NATS): stream replicas, retention by age (ms) and size (bytes). */
    jetstreamReplicas: z.coerce.number().int().min(1).max(5).default(1),
    jetstreamMaxAgeMs: positiveInt.default(604_800_000),
    jetstreamMaxBytes: positiveInt.default(10_737_418_240),
    /** A message delivered to a history writer that neither acked it nor kept it in progress (e.g. killed) is redelivered after this, ms; live writers mark held messages in progress every quarter of it. */
    jetstreamAckWaitMs: positiveInt.default(5_000),
    /** Run the history writer (durable log → PostgreSQL) inside this node; off when `switchboard history-writer` runs apart. */
    historyWriter: bool.default(true),
    /** Most messages the history writer inserts per batch (one multi-row INSERT … ON CONFLICT DO NOTHING). */
    historyBatch: z.coerce.number().int().min(1).max(8191).default(5000),
    /** Gateway processes on this port (Node cluster module): a number or `auto` (one per core). */
    workers: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(256)]).default(1),
    /** Auth: exactly one key source unless --dev. */
    jwtSecret: z.string().min(16, 'jwt secret: at least 16 characters').optional(),
    jwtPublicKey: z.string().optional(),
    jwksUrl: z.url().optional(),
    jwtIssuer: z.string().optional(),
    jwtAudience: z.string().optional(),
    apiKey: z.string().min(16, 'api key: at least 16 characters').optional(),
    /** Limits. */
    maxFrameBytes: positiveInt.default(65_536),
    /** Hard bound on a connection's unsent output: over it, cut at once (close 4003). */
    maxBufferedBytes: positiveInt.default(8_388_608),
    /** Soft bound: a connection whose unsent output stays over this for slowConsumerMs is cut (4003). */
    slowConsumerBytes: positiveInt.default(1_048_576),
    slowConsumerMs: positiveInt.default(2_000),
    maxRoomsPerConnection: positiveInt.default(100),
    /**
     * permessage-deflate on /ws (docs/operations.md §12): offered to clients, and room messages of at
     * least compressionThresholdBytes (their JSON) are compressed once and shared by every member that took it.
     */
    compression: bool.default(true),
    compressionThresholdBytes: positiveInt.default(1_024),
    /** Publishes one connection may make per second (a token bucket holding one second's worth); 0: no limit. */
    publishRatePerConnection: z.coerce.number().int().min(0).default(0),
    /** Connections one user may hold on this node (a connect beyond is refused too_many_connections, close 4007); 0: no limit. */
    maxConnectionsPerUser: z.coerce.number().int().min(0).default(0),
    /** How long a revocation (POST /api/revoke) stays in force when it does not say: a user's, or a token's without expiresAt. */
    revocationTtlMs: positiveInt.default(86_400_000),
    maxConnections: positiveInt.default(100_000),
    admissionRate: positiveInt.default(2_000),
    admissionBurst: positiveInt.default(4_000),
    retryAfterMinS: positiveInt.default(1),
    retryAfterMaxS: positiveInt.default(10),
    maxHttpBodyBytes: positiveInt.default(262_144),
    /** Heartbeats. */
    pingIntervalMs: positiveInt.default(25_000),
    pingTimeoutMs: positiveInt.default(10_000),
    connectTimeoutMs: positiveInt.default(10_000),
    presenceTtlMs: positiveInt.default(45_000),
    presenceDiffMs: positiveInt.default(250),
    /** Recovery window and history. */
    recoveryWindow: positiveInt.default(1_000),
    recoveryWindowMs: positiveInt.default(120_000),
    recoveryMaxGap: positiveInt.default(10_000),
    idempotencyMs: positiveInt.default(600_000),
    /** A publish not confirmed durable within this time is answered `unavailable` (retry with the same idem). */
    publishTimeoutMs: positiveInt.default(10_000),
    /** Backend services (docs/backend.md): comma-separated services whose sends are durable (JetStream). */
    durableServices: z.string().default(''),
    rpcTimeoutMs: positiveInt.default(5_000),
    rpcMaxTimeoutMs: positiveInt.default(60_000),
    serviceSendTimeoutMs: positiveInt.default(5_000),
    serviceQueueMaxMsgs: positiveInt.default(100_000),
    /** Shutdown: clients are told to reconnect after a random delay in [0, drainSpreadMs]. */
    drainSpreadMs: positiveInt.default(5_000),
    drainTimeoutMs: positiveInt.default(10_000),
    /** Pusher Channels protocol apps served on /app/:key and /apps/:id (docs/pusher.md). */
    pusherApps: pusherAppsSchema.default([]),
    /** The app's backend asked per connect, join and publish (docs/hooks.md). */
    hooks: hooksSchema.default({}),
    /** The `activity_timeout` announced to Pusher clients, s: they ping after this long without traffic. */
    pusherActivityTimeoutS: positiveInt.default(120),
    /** Webhooks of native tenants (docs/hooks.md): a JSON array of {tenant, secret, url, events, rooms, clientEventRooms}. */
    webhooks: jsonArray(tenantWebhookSchema).default([]),
    /** Delivery policy and publish cap per room pattern and tenant (docs/operations.md "Delivery policies"); first match wins. */
    roomPolicies: jsonArray(roomPolicySchema).default([]),
    /**
     * Regions (docs/scaling.md "Regions"): this node's region, the name of the NATS cluster it connects to in a
     * supercluster. Absent: no regions, every room sequenced here as before.
     */
    region: z.string().regex(REGION_NAME, REGION_NAME_RULE).optional(),
    /** Every region of the deployment, comma-separated, the same list on every node (rooms are hashed over it); default: --region alone. */
    regions: z.string().default(''),
    /** Home region per room pattern and tenant: JSON array of {tenant?, rooms, region}; first match wins, other rooms hashed over --regions. */
    regionHomes: jsonArray(regionHomeSchema).default([]),
    /** A publish forwarded to its room's home region not answered within this is `unavailable` (retry with the same idem), ms; default publishTimeoutMs + 2000. */
    regionTimeoutMs: positiveInt.optional(),
    /** A member (room) gone and back within this is not reported removed (vacated), ms. */
    webhookGraceMs: z.coerce.number().int().min(0).default(5_000),
    /** Events in one webhook request at most. */
    webhookBatchSize: positiveInt.default(100),
    /** How long a webhook request waits for more events after its first, ms. */
    webhookBatchMs: z.coerce.number().int().min(0).default(200),
    /** A webhook request not answered 2xx within this is retried, ms. */
    webhookTimeoutMs: positiveInt.default(5_000),
    /** Retries of a failing webhook request (backoff from 500 ms doubling to 30 s) stop this long after its first attempt; then dead-lettered, ms. */
    webhookRetryDeadlineMs: positiveInt.default(600_000),
    /** A node's sender handed a webhook event (JetStream) that it neither sends nor keeps in progress for this long is given to another node, ms. */
    webhookAckWaitMs: positiveInt.default(10_000),
    /** Webhook requests in flight per node at most. */
    webhookConcurrency: positiveInt.default(8),
    /**
     * Resolution of the event-loop delay monitor behind `switchboard_nodejs_eventloop_lag_*_seconds`, ms. The
     * monitor's timer wakes the loop this often (1 ms cost ~2.7 % of a core on the dev machine, 10 ms ~0.6 %);
     * a stall shorter than it can go unseen, so measure 5 ms stalls with 1.
     */
    eventLoopResolutionMs: positiveInt.default(10),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((c, ctx) => {
    const sources = [c.jwtSecret, c.jwtPublicKey, c.jwksUrl].filter((s) => s !== undefined).length;
    if (sources > 1) ctx.addIssue({ code: 'custom', message: 'give only one of --jwt-secret, --jwt-public-key, --jwks-url' });
    if (!c.dev && sources === 0 && c.hooks.connect === undefined)
      ctx.addIssue({
        code: 'custom',
        message: 'authentication needs --jwt-secret, --jwt-public-key, --jwks-url or a connect hook (--hooks), or --dev for anonymous development mode',
      });
    const clustered = c.nats !== undefined || c.redis !== undefined || c.database !== undefined;
    if (clustered) {
      const backplane = c.backplane ?? (c.nats !== undefined ? 'nats' : 'redis');
      if (backplane === 'nats' && c.nats === undefined) ctx.addIssue({ code: 'custom', message: 'cluster mode needs --nats (or --backplane redis)' });
      if (c.redis === undefined) ctx.addIssue({ code: 'custom', message: 'cluster mode needs --redis for presence and sequencing shared by all nodes' });
      if (c.database === undefined) ctx.addIssue({ code: 'custom', message: 'cluster mode needs --database (PostgreSQL) for history shared by all nodes' });
    } else if (c.backplane !== undefined) {
      ctx.addIssue({ code: 'custom', message: '--backplane needs cluster mode (--nats/--redis/--database)' });
    }
    if (c.redis !== undefined && !/^(rediss?:\/\/|redis\+sentinel:\/\/[^/?]+\/[^/?]+|redis\+cluster:\/\/[^/?]+\/?$)/.test(c.redis))
      ctx.addIssue({
        code: 'custom',
        path: ['redis'],
        message:
          'expected redis://[:password@]host:port[/db], rediss://…, redis+sentinel://[:password@]host:port,host:port/master-name or redis+cluster://[:password@]host:port,host:port',
      });
    if (c.durableLog === 'jetstream' && c.nats === undefined) ctx.addIssue({ code: 'custom', message: '--durable-log jetstream needs --nats' });
    if (c.workers !== 1 && c.nats === undefined && c.backplane !== 'redis') {
      ctx.addIssue({
        code: 'custom',
        message: '--workers needs a shared backplane: give --nats (and --redis, --database); embedded engines live inside one process',
      });
    }
    const durable = durableServiceList(c.durableServices);
    if (durable.some((s) => !/^[a-z0-9_-]{1,64}$/.test(s)))
      ctx.addIssue({ code: 'custom', message: 'durable-services: comma-separated service names of 1–64 a–z 0–9 _ -' });
    if (durable.length > 0 && c.nats === undefined) ctx.addIssue({ code: 'custom', message: '--durable-services needs --nats (with JetStream)' });
    const ids = new Set<string>();
    const keys = new Set<string>();
    for (const app of c.pusherApps) {
      if (ids.has(app.id)) ctx.addIssue({ code: 'custom', message: `pusher-apps: app id ${app.id} is given twice` });
      if (keys.has(app.key)) ctx.addIssue({ code: 'custom', message: `pusher-apps: app key ${app.key} is given twice` });
      ids.add(app.id);
      keys.add(app.key);
    }
    for (const [kind, hook] of Object.entries(c.hooks)) {
      if (hook?.url.startsWith('nats:') === true && c.nats === undefined)
        ctx.addIssue({ code: 'custom', path: ['hooks'], message: `hooks.${kind}: a nats: hook needs --nats` });
    }
    for (const w of c.webhooks) {
      if (c.pusherApps.some((app) => app.id === w.tenant))
        ctx.addIssue({ code: 'custom', message: `webhooks: tenant ${w.tenant} is a Pusher app: give its webhooks in pusherApps[].webhooks` });
    }
    if (c.region === undefined) {
      if (c.regions !== '' || c.regionHomes.length > 0 || c.regionTimeoutMs !== undefined)
        ctx.addIssue({ code: 'custom', message: '--regions, --region-homes and --region-timeout-ms need --region' });
    } else {
      if (c.nats === undefined || c.backplane === 'redis')
        ctx.addIssue({ code: 'custom', message: '--region needs --nats as the backplane (the regions are NATS clusters joined by gateways)' });
      if (c.durableLog === 'memory')
        ctx.addIssue({ code: 'custom', message: '--region needs the JetStream durable log (a room is durable in its home region)' });
      const all = regionList(c);
      if (all.some((r) => !REGION_NAME.test(r))) ctx.addIssue({ code: 'custom', path: ['regions'], message: `regions: comma-separated; ${REGION_NAME_RULE}` });
      if (new Set(all).size !== all.length) ctx.addIssue({ code: 'custom', path: ['regions'], message: 'regions: a region is given twice' });
      if (!all.includes(c.region)) ctx.addIssue({ code: 'custom', path: ['regions'], message: `regions: must include this node's region ${c.region}` });
      for (const rule of c.regionHomes) {
        if (!all.includes(rule.region))
          ctx.addIssue({ code: 'custom', path: ['regionHomes'], message: `region-homes: region ${rule.region} is not in --regions (${all.join(',')})` });
      }
    }
    if (c.retryAfterMaxS < c.retryAfterMinS) ctx.addIssue({ code: 'custom', message: 'retry-after-max-s must be >= retry-after-min-s' });
  });

/** Cluster mode: any of --nats, --redis, --database (embedded engines otherwise). */
export function isClustered(c: Pick<Config, 'nats' | 'redis' | 'database'>): boolean {
  return c.nats !== undefined || c.redis !== undefined || c.database !== undefined;
}

/** Every region (--regions, or --region alone), in the order given; empty without --region. */
export function regionList(c: Pick<Config, 'region' | 'regions'>): string[] {
  if (c.region === undefined) return [];
  const all = c.regions
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return all.length > 0 ? all : [c.region];
}

/** The --durable-services list as names. */
export function durableServiceList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Keys whose values are never printed or logged. */
export const SECRET_KEYS: readonly (keyof Config)[] = ['jwtSecret', 'apiKey'];
