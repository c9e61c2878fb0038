/**
 * /metrics of a real node process after some traffic parses with a strict text-format parser and has
 * every figure seed 004 asks for, with bounded labels; the Grafana dashboard and the Prometheus alert rules
 * are valid PromQL (parsed with the Prometheus project's own grammar, @prometheus-io/lezer-promql) and
 * name only series that /metrics exposes; the admin API wants the API key; the pages and their assets
 * are served with their types, and an unknown asset is a 404.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { parsePrometheusText, seriesNames, type Family } from '../helpers/prom-text.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

const API_KEY = 'metrics-test-api-key-0123456789';
const root = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
let node: NodeProcess;
let families: Map<string, Family>;
const clients: TestClient[] = [];

/** Metric names used by a PromQL expression (vector selectors), after Grafana's variables are filled in. */
function metricNames(expr: string): string[] {
  const q = expr.replace(/\$__rate_interval|\$__interval/g, '1m');
  const tree = parser.parse(q);
  const names: string[] = [];
  const errors: string[] = [];
  tree.iterate({
    enter(n) {
      if (n.type.isError) errors.push(`at ${n.from}: ${q.slice(Math.max(0, n.from - 20), n.to + 20)}`);
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') names.push(q.slice(n.from, n.to));
    },
  });
  if (errors.length > 0) throw new Error(`not valid PromQL: ${expr} (${errors.join('; ')})`);
  return names;
}

const value = (name: string, labels: Record<string, string> = {}): number | undefined => {
  const fam = [...families.values()].find((f) => f.samples.some((s) => s.name === name));
  return fam?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
};

beforeAll(async () => {
  node = await startNodeProcess({ args: ['--node-id', 'metrics-node', '--api-key', API_KEY] });
  const a = await TestClient.connect(node.wsUrl, { user: 'ann' });
  const b = await TestClient.connect(node.wsUrl, { user: 'ben' });
  clients.push(a, b);
  for (const c of [a, b]) await c.request({ type: 'join', room: 'metrics' });
  for (let i = 0; i < 5; i++) await a.request({ type: 'publish', room: 'metrics', data: { text: `m${i}` } });
  await b.waitForMessages('metrics', 5);
  // A client coming back: a new connection resuming the room from where it was.
  const back = await TestClient.connect(node.wsUrl, { user: 'ben' });
  clients.push(back);
  const joined = await back.request({ type: 'join', room: 'metrics', since: { seq: 3, epoch: b.messages('metrics')[0]!.epoch as string } });
  expect(joined).toMatchObject({ type: 'joined', recovery: 'recovered', missed: 2 });
  await waitFor(
    async () => {
      families = parsePrometheusText(await (await fetch(`${node.url}/metrics`)).text());
      return (value('switchboard_largest_room_members') ?? 0) === 3; // set at the next announcement
    },
    15_000,
    'room size gauges to be updated',
    200,
  );
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await node.stop();
});

describe('/metrics', () => {
  it('parses strictly and carries every figure of seed 004 with what this traffic produced', () => {
    // Active connections, memory, CPU, reconnects, room sizes, fan-out latency, broker latency, history lag.
    expect(value('switchboard_connections')).toBe(3);
    expect(value('switchboard_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(value('switchboard_process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('switchboard_reconnects_total')).toBe(1);
    expect(value('switchboard_rooms_by_size', { size: '2-10' })).toBe(1);
    expect(value('switchboard_largest_room_members')).toBe(3);
    expect(value('switchboard_fanout_members_count')).toBe(5);
    expect(value('switchboard_fanout_members_sum')).toBe(10);
    expect(value('switchboard_publish_to_deliver_seconds_count')).toBe(5);
    expect(value('switchboard_backplane_publish_seconds_count')).toBeGreaterThanOrEqual(5);
    expect(value('switchboard_history_lag_messages')).toBe(0);
    expect(value('switchboard_history_lag_seconds')).toBe(0);
    expect(value('switchboard_cluster_nodes')).toBe(1);
    expect(value('switchboard_messages_published_total', { source: 'ws' })).toBe(5);
  });

  it('has bounded labels only: no room, user or connection label on any series', () => {
    for (const f of families.values()) {
      for (const s of f.samples) {
        for (const label of Object.keys(s.labels))
          expect(['room', 'user', 'tenant', 'conn', 'connId', 'socket'], `${s.name} has label ${label}`).not.toContain(label);
        expect(s.labels.node).toBe('metrics-node');
      }
    }
  });

  it('the strict parser refuses what Prometheus would refuse', () => {
    expect(() => parsePrometheusText('# TYPE a counter\na{room="x} 1\n')).toThrow(/malformed/);
    expect(() => parsePrometheusText('b 1\n')).toThrow(/without its # TYPE/);
    expect(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/not cumulative/);
    expect(() => parsePrometheusText('# TYPE c counter\nc 1\nc 2\n')).toThrow(/duplicate/);
    expect(() => parsePrometheusText('# TYPE c counter\nc one\n')).toThrow(/bad value/);
  });
});

describe('the Grafana dashboard and the alert rules', () => {
  it('use only metrics that /metrics exposes, in valid PromQL', () => {
    const exposed = seriesNames(families);
    exposed.add('up'); // Prometheus' own per-target series
    const dashboard = JSON.parse(readFileSync(root('deploy/grafana/switchboard.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
      templating: { list: { definition?: string }[] };
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));
    for (const v of dashboard.templating.list) {
      const m = /^label_values\((\w+),/.exec(v.definition ?? '');
      if (m !== null) exprs.push({ where: 'template variable', expr: m[1]! });
    }
    const rules = readFileSync(root('deploy/prometheus-alerts.yml'), 'utf8');
    for (const m of rules.matchAll(/^\s+- alert: (\w+)\n\s+expr: (.+)$/gm)) exprs.push({ where: `alert ${m[1]}`, expr: m[2]! });
    expect(exprs.filter((e) => e.where.startsWith('alert')).length).toBe((rules.match(/- alert:/g) ?? []).length);
    expect(exprs.length).toBeGreaterThan(40);
    const used = new Set<string>();
    for (const { where, expr } of exprs) {
      const names = metricNames(expr);
      expect(names.length, `${where} names no metric`).toBeGreaterThan(0);
      for (const n of names) {
        expect(exposed.has(n), `${where} uses ${n}, which /metrics does not expose`).toBe(true);
        used.add(n);
      }
    }
    // Seed 004's figures are all on the dashboard.
    for (const n of [
      'switchboard_connections',
      'switchboard_process_resident_memory_bytes',
      'switchboard_process_cpu_seconds_total',
      'switchboard_reconnects_total',
      'switchboard_rooms_by_size',
      'switchboard_publish_to_deliver_seconds_bucket',
      'switchboard_backplane_publish_seconds_bucket',
      'switchboard_history_lag_seconds',
    ])
      expect(used).toContain(n);
  });

  it('prometheus.yml loads the alert rules file that exists', () => {
    const conf = readFileSync(root('deploy/prometheus.yml'), 'utf8');
    expect(conf).toMatch(/rule_files:\n\s+- prometheus-alerts\.yml/);
    expect(conf).toMatch(/metrics_path: \/metrics/);
  });
});

describe('GET /api/admin/cluster', () => {
  it('refuses a request without the API key and lists this node with its figures with it', async () => {
    const denied = await fetch(`${node.url}/api/admin/cluster`);
    expect(denied.status).toBe(401);
    const wrong = await fetch(`${node.url}/api/admin/cluster`, { headers: { authorization: 'Bearer wrong-key-wrong-key-wrong' } });
    expect(wrong.status).toBe(401);
    const res = await fetch(`${node.url}/api/admin/cluster`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(200);
    const view = (await res.json()) as {
      node: string;
      nodes: { node: string; self: boolean; connections: number; topRooms: unknown[] }[];
      rooms: { room: string; members: number }[];
    };
    expect(view.node).toBe('metrics-node');
    expect(view.nodes).toHaveLength(1);
    expect(view.nodes[0]).toMatchObject({ node: 'metrics-node', self: true, connections: 3 });
    expect(view.rooms).toEqual([expect.objectContaining({ room: 'metrics', tenant: 'default', members: 3, nodes: 1 })]);
    const post = await fetch(`${node.url}/api/admin/cluster`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
    expect(post.status).toBe(405);
  });
});

describe('the web pages', () => {
  it('serves /, /admin and their assets with their content types; unknown assets are 404', async () => {
    for (const [path, type, needle] of [
      ['/', 'text/html', '/assets/chat.js'],
      ['/admin', 'text/html', '/assets/admin.js'],
      ['/assets/chat.js', 'text/javascript', 'switchboard'],
      ['/assets/base.css', 'text/css', '--accent'],
      ['/assets/logo.svg', 'image/svg+xml', '<svg'],
    ] as const) {
      const res = await fetch(`${node.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toContain(type);
      expect(await res.text(), path).toContain(needle);
    }
    for (const path of ['/assets/nope.js', '/assets/../package.json', '/assets/chat.js.map', '/admin.html']) {
      expect((await fetch(`${node.url}${path}`)).status, path).toBe(404);
    }
  });
});
