/**
 * Starts a real Switchboard node process (the built CLI) on a free port for a test, and stops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Generous: a loaded 2-core machine can starve a starting node for seconds (and `--embedded-store pglite` runs initdb). */
const START_TIMEOUT_MS = 60_000;
/** The built CLI; SWITCHBOARD_TEST_DIST points at another build's dist/ (e.g. to show a test fails before a fix). */
const CLI =
  process.env.SWITCHBOARD_TEST_DIST !== undefined
    ? join(process.env.SWITCHBOARD_TEST_DIST, 'cli', 'main.js')
    : fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface NodeProcess {
  readonly port: number;
  readonly url: string;
  readonly wsUrl: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Parsed JSON log lines so far. */
  readonly logs: Record<string, unknown>[];
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

export interface NodeOptions {
  args?: string[];
  env?: Record<string, string>;
  dataDir?: string;
  dev?: boolean;
  port?: number;
  /** How long to wait for the `listening` line before killing the process (default 30 s). */
  startTimeoutMs?: number;
}

export function tempDir(prefix = 'sb-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startNodeProcess(options: NodeOptions = {}): Promise<NodeProcess> {
  const dataDir = options.dataDir ?? tempDir();
  const args = [
    CLI,
    'start',
    '--port',
    String(options.port ?? 0),
    '--host',
    '127.0.0.1',
    '--data-dir',
    dataDir,
    ...(options.dev === false ? [] : ['--dev']),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS;
    const timer = setTimeout(() => {
      // Not left running: nobody would stop a node whose start the test never saw.
      child.kill('SIGKILL');
      reject(new Error(`node did not start in ${startTimeoutMs} ms; stderr: ${stderr}`));
    }, startTimeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.msg === 'listening' && typeof rec.port === 'number') {
            clearTimeout(timer);
            resolve(rec.port);
          }
        } catch {
          /* not a log line */
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
  const cleanup = (): void => {
    if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    dataDir,
    child,
    logs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      cleanup();
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      cleanup();
    },
  };
}
