/**
 * The `send` and `rpc` frames of a connection (protocol.md): handed to the node's Services and answered
 * with `sent` / `rpc.result`, or an error frame (thrown SwitchboardError, sent by the session). Each is
 * counted in switchboard_service_requests_total by kind and result.
 */
import type { ClientFrame } from '../protocol/frames.js';
import { SwitchboardError } from '../protocol/errors.js';
import type { Connection } from './connection.js';
import type { GatewayDeps } from './deps.js';

type ServiceFrame = Extract<ClientFrame, { type: 'send' | 'rpc' }>;

export async function serviceFrame(ctx: Pick<GatewayDeps, 'services' | 'metrics'>, c: Connection, f: ServiceFrame): Promise<void> {
  const id = c.identity!;
  let kind: string = f.type;
  try {
    if (f.type === 'send') {
      const out = await ctx.services.send(id, c.id, f.topic, f.data, f.idem);
      kind = out.durable ? 'send_durable' : 'send';
      c.sendFrame({ type: 'sent', id: f.id, topic: f.topic, idem: out.idem, durable: out.durable, duplicate: out.duplicate });
    } else {
      const data = await ctx.services.rpc(id, c.id, f.topic, f.data, f.timeoutMs);
      c.sendFrame({ type: 'rpc.result', id: f.id, topic: f.topic, data });
    }
    ctx.metrics.serviceRequests.inc({ kind, result: 'ok' });
  } catch (err) {
    ctx.metrics.serviceRequests.inc({ kind, result: err instanceof SwitchboardError ? err.code : 'internal' });
    throw err;
  }
}
