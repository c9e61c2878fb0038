/**
 * The node's HTTP server: the API, health and readiness, Prometheus metrics, the web pages, and the
 * WebSocket upgrade on /ws. Every request fails alone: errors become JSON 4xx/5xx, counted by code.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Edge } from '../messaging/edge.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { AdminApi, type AdminSource } from './admin.js';
import { Api, type ApiDeps } from './api.js';
import { WEB_DIR, webAsset } from './pages.js';
import { HttpError, httpErrorOf, RequestAbortedError, sendError, sendJson } from './respond.js';

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

/** What the HTTP server needs from its node. WebSocket upgrades are handed to `upgrade` (the gateway). */
export interface HttpDeps extends ApiDeps {
  readonly nodeId: string;
  readonly metrics: Pick<Metrics, 'registry' | 'httpRequests' | 'httpAborted'>;
  readonly log: Logger;
  readonly edge: Edge;
  readonly readiness: () => Readiness;
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Further APIs served by layers above this one (the Pusher HTTP API), tried in order after /api/. */
  readonly routes?: readonly HttpRoute[];
  readonly cluster?: AdminSource;
}

/** A handler for the paths it knows: resolves to its route label (for metrics), or null for a path it does not serve. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => Promise<string | null>;

export function createHttpServer(deps: HttpDeps): Server {
  const api = new Api(deps);
  const admin = deps.cluster !== undefined ? new AdminApi(deps.cluster, (req) => api.authorize(req)) : null;
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof RequestAbortedError) {
        // A client event (anyone can do it at will): counted, logged at debug, never at error.
        deps.metrics.httpAborted.inc();
        deps.log.debug({ url: req.url }, 'http request aborted by the client');
        res.destroy();
        return;
      }
      // HttpErrors are this layer's own refusals (404, 405, 413, 415…); everything else is the edge's.
      const e = err instanceof HttpError ? err : httpErrorOf(deps.edge.refused(err, { url: req.url }));
      if (err instanceof HttpError) deps.edge.counted(e.code);
      if (!res.headersSent) sendError(res, e);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    let route = 'other';
    res.on('finish', () => deps.metrics.httpRequests.inc({ route, status: `${Math.floor(res.statusCode / 100)}xx` }));
    if (path === '/healthz') {
      route = 'healthz';
      sendJson(res, 200, { status: 'ok', node: deps.nodeId });
      return;
    }
    if (path === '/readyz') {
      route = 'readyz';
      const r = deps.readiness();
      sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', node: deps.nodeId, checks: r.checks });
      return;
    }
    if (path === '/metrics') {
      route = 'metrics';
      const body = await deps.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
      res.end(body);
      return;
    }
    if (path.startsWith('/api/')) {
      route = 'api';
      const a = admin?.handle(req, res, path) ?? null;
      if (a !== null) {
        route = a;
        return;
      }
      const r = await api.handle(req, res, path, url.searchParams);
      if (r !== null) {
        route = r;
        return;
      }
      throw new HttpError(404, 'bad_request', `no API route ${path}`);
    }
    for (const r of deps.routes ?? []) {
      const label = await r(req, res, path, url.searchParams);
      if (label !== null) {
        route = label;
        return;
      }
    }
    const page = webAsset(path);
    if (page !== null && (req.method === 'GET' || req.method === 'HEAD')) {
      route = 'page';
      let body: Buffer;
      try {
        body = await readFile(WEB_DIR + page.file);
      } catch {
        if (page.file.endsWith('.html')) throw new HttpError(503, 'unavailable', `web page ${page.file} is not built: run npm run build`);
        throw new HttpError(404, 'bad_request', `not found: ${path}`);
      }
      res.writeHead(200, { 'content-type': page.type, 'content-length': body.length, 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    throw new HttpError(404, 'bad_request', `not found: ${path}`);
  }

  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    socket.on('error', () => undefined);
    deps.upgrade(req, socket, head);
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  return server;
}
