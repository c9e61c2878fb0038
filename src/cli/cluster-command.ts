/**
 * `switchboard cluster --nodes N [-- <start flags>]`: a local multi-node setup for development. Starts N
 * gateway nodes on ports port+1..port+N against the given NATS, Redis and PostgreSQL, and, when nginx is
 * installed, nginx on `port` in front of them (round robin). Ctrl-C / SIGTERM drains everything.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNginx } from './nginx.js';

export interface ClusterCommandOptions {
  nodes: number;
  port: number;
  host: string;
  nats: string;
  redis: string;
  database: string;
  extra: string[];
}

export function runClusterCommand(o: ClusterCommandOptions, cliPath: string): void {
  const children: ChildProcess[] = [];
  const say = (line: string): void => {
    process.stdout.write(`${JSON.stringify({ level: 30, time: new Date().toISOString(), cluster: true, msg: line })}\n`);
  };
  for (let i = 1; i <= o.nodes; i++) {
    const args = [
      cliPath,
      'start',
      '--port',
      String(o.port + i),
      '--host',
      o.host,
      '--node-id',
      `node-${i}`,
      '--nats',
      o.nats,
      '--redis',
      o.redis,
      '--database',
      o.database,
      ...o.extra,
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(child);
  }
  const hasNginx = spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0;
  if (hasNginx) {
    const dir = mkdtempSync(join(tmpdir(), 'switchboard-nginx-'));
    const upstreams = Array.from({ length: o.nodes }, (_, i) => ({ host: '127.0.0.1', port: o.port + i + 1 }));
    const nginx = startNginx({ listenPort: o.port, listenHost: o.host === '0.0.0.0' ? '0.0.0.0' : '127.0.0.1', upstreams, dir });
    nginx.stderr?.on('data', (d: Buffer) => process.stderr.write(`nginx: ${d.toString()}`));
    children.push(nginx);
    say(`nginx on http://localhost:${o.port}/ in front of ${o.nodes} nodes (ports ${o.port + 1}..${o.port + o.nodes})`);
  } else {
    say(`nginx is not installed: open the nodes directly on ports ${o.port + 1}..${o.port + o.nodes}`);
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    let alive = children.filter((c) => c.exitCode === null).length;
    if (alive === 0) process.exit(0);
    for (const c of children) {
      c.once('exit', () => {
        if (--alive === 0) process.exit(0);
      });
      c.kill(signal === 'SIGINT' ? 'SIGTERM' : signal);
    }
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  for (const c of children) {
    c.once('exit', (code) => {
      if (!stopping) {
        say(`a cluster process exited (${code ?? 'signal'}); stopping the local cluster`);
        stop('SIGTERM');
      }
    });
  }
}
