/**
 * Two regions on loopback for tests (issue 17): each region is a NATS cluster of one nats-server with
 * JetStream (its cluster and gateway named after the region), its own Redis and, unless told otherwise, its
 * own PostgreSQL; the two clusters form a supercluster through NATS gateways whose link runs through TCP
 * proxies inside the test process (test/helpers/tcp-proxy.ts), one per direction of connection, so the test
 * can delay every byte between the regions and cut or hold the link and restore it.
 *
 * Gateway connections are one-way (each server dials the other), and a server passes on the address the other
 * side advertised, so each server advertises its own proxy: every gateway connection, whichever side dials,
 * goes through a proxy. One server per region also means one JetStream meta group of two peers across the
 * link (JetStream has one meta layer per supercluster): while the link is down neither side can create
 * streams or consumers, while existing streams keep storing (docs/scaling.md, "Regions").
 */
import { freePort } from './free-port.js';
import { startNatsServer, startPostgres, startRedisServer, waitForJetStreamMeta, type NatsServer, type TestServer } from './servers.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { waitFor } from './wait.js';

export interface TestRegion {
  readonly name: string;
  readonly nats: NatsServer;
  readonly redis: TestServer;
  /** The region's PostgreSQL (the shared one with `postgres: 'shared'`; absent with 'none'). */
  readonly pg?: TestServer;
}

export interface RegionLink {
  /** Delay added to every byte crossing the link, in each direction, ms. */
  delayMs: number;
  readonly state: 'up' | 'cut' | 'held';
  /** Bytes that crossed the link (both directions, both connections) so far. */
  bytes(): number;
  /** Bytes in the link not delivered yet (delayed, or held by `hold`). */
  pendingBytes(): number;
  /** Resets every gateway connection and refuses new ones until `restore`. */
  cut(): void;
  /** Keeps the connections but forwards nothing (held in order) until `restore`. */
  hold(): void;
  restore(): void;
  /** Resolves when both servers report their gateway to the other region connected, both ways. */
  waitUp(timeoutMs?: number): Promise<void>;
  /** Resolves when neither server has a gateway connection to the other. */
  waitDown(timeoutMs?: number): Promise<void>;
}

export interface TwoRegions {
  readonly regions: readonly [TestRegion, TestRegion];
  readonly link: RegionLink;
  dispose(): Promise<void>;
}

export interface TwoRegionOptions {
  /** Region (NATS cluster) names; default `['east', 'west']`. */
  names?: readonly [string, string];
  /** Link delay at start, ms (default 0). */
  delayMs?: number;
  /** One PostgreSQL per region (default), one for both, or none. */
  postgres?: 'per-region' | 'shared' | 'none';
}

interface Gatewayz {
  outbound_gateways?: Record<string, { connection?: unknown }>;
  inbound_gateways?: Record<string, unknown[]>;
}

async function gatewayz(server: NatsServer): Promise<Gatewayz | null> {
  try {
    const res = await fetch(`${server.monitorUrl!}/gatewayz`, { signal: AbortSignal.timeout(2_000) });
    return res.ok ? ((await res.json()) as Gatewayz) : null;
  } catch {
    return null;
  }
}

/** Whether `server` has an outbound and an inbound gateway connection to cluster `other`. */
async function linkedTo(server: NatsServer, other: string): Promise<{ out: boolean; in: boolean }> {
  const g = await gatewayz(server);
  return { out: g?.outbound_gateways?.[other]?.connection !== undefined, in: (g?.inbound_gateways?.[other]?.length ?? 0) > 0 };
}

export async function startTwoRegions(options: TwoRegionOptions = {}): Promise<TwoRegions> {
  const names = options.names ?? (['east', 'west'] as const);
  const ports = new Set<number>();
  // Client, cluster, gateway and monitor port per region, all distinct before anything binds.
  while (ports.size < 8) ports.add(await freePort());
  const [c0, c1, r0, r1, g0, g1, m0, m1] = [...ports] as [number, number, number, number, number, number, number, number];
  const proxies: TcpProxy[] = [];
  const servers: TestServer[] = [];
  try {
    // proxies[i] stands for the link towards region i's gateway.
    proxies.push(await startTcpProxy(g0, { delayMs: options.delayMs ?? 0 }), await startTcpProxy(g1, { delayMs: options.delayMs ?? 0 }));
    const spec = [
      { name: names[0], client: c0, route: r0, gw: g0, monitor: m0, other: { name: names[1], proxy: proxies[1]!.port } },
      { name: names[1], client: c1, route: r1, gw: g1, monitor: m1, other: { name: names[0], proxy: proxies[0]!.port } },
    ];
    const nats = await Promise.all(
      spec.map((s, i) =>
        startNatsServer({
          port: s.client,
          jetstream: true,
          serverName: `${s.name}-0`,
          monitorPort: s.monitor,
          // JetStream clustering needs a cluster with routes: a one-server cluster routes to itself.
          cluster: { name: s.name, port: s.route, routes: [s.route] },
          gateway: { name: s.name, port: s.gw, advertisePort: proxies[i]!.port, gateways: [{ name: s.other.name, port: s.other.proxy }] },
        }),
      ),
    );
    servers.push(...nats);
    const pgMode = options.postgres ?? 'per-region';
    const pgs: TestServer[] = pgMode === 'none' ? [] : pgMode === 'shared' ? [await startPostgres()] : await Promise.all([startPostgres(), startPostgres()]);
    servers.push(...pgs);
    const redis = await Promise.all([startRedisServer(), startRedisServer()]);
    servers.push(...redis);
    const regions = spec.map((s, i): TestRegion => ({
      name: s.name,
      nats: nats[i]!,
      redis: redis[i]!,
      ...(pgs.length > 0 ? { pg: pgs[Math.min(i, pgs.length - 1)]! } : {}),
    })) as [TestRegion, TestRegion];
    const link: RegionLink = {
      get delayMs() {
        return proxies[0]!.delayMs;
      },
      set delayMs(ms: number) {
        for (const p of proxies) p.delayMs = ms;
      },
      get state() {
        return proxies[0]!.state;
      },
      bytes: () => proxies.reduce((n, p) => n + p.bytesForward + p.bytesBack, 0),
      pendingBytes: () => proxies.reduce((n, p) => n + p.pendingBytes, 0),
      cut: () => proxies.forEach((p) => p.cut()),
      hold: () => proxies.forEach((p) => p.hold()),
      restore: () => proxies.forEach((p) => p.restore()),
      waitUp: (timeoutMs = 20_000) =>
        waitFor(
          async () => {
            const [a, b] = await Promise.all([linkedTo(nats[0]!, names[1]), linkedTo(nats[1]!, names[0])]);
            return a.out && a.in && b.out && b.in;
          },
          timeoutMs,
          'the gateway link between the regions to be up',
          100,
        ),
      waitDown: (timeoutMs = 20_000) =>
        waitFor(
          async () => {
            const [a, b] = await Promise.all([linkedTo(nats[0]!, names[1]), linkedTo(nats[1]!, names[0])]);
            return !a.out && !a.in && !b.out && !b.in;
          },
          timeoutMs,
          'the gateway link between the regions to be down',
          100,
        ),
    };
    await link.waitUp(30_000);
    // One JetStream meta group spans the supercluster: wait until both servers name one leader.
    await waitForJetStreamMeta(nats, 30_000);
    return {
      regions,
      link,
      async dispose() {
        await Promise.allSettled([...servers.map((s) => s.dispose()), ...proxies.map((p) => p.close())]);
      },
    };
  } catch (err) {
    await Promise.allSettled([...servers.map((s) => s.dispose()), ...proxies.map((p) => p.close())]);
    throw err;
  }
}
