/**
 * The orchestrator's side of the load generators: spawning bench/lib/loadgen.mjs children on core 1, each
 * with its own loopback source address, and talking to them over IPC.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, stop } from './procs.mjs';

const LOADGEN = join(dirname(fileURLToPath(import.meta.url)), 'loadgen.mjs');
/** Pusher-shaped load (`proto: 'pusher'`): the same IPC commands, another child (pusher-loadgen.mjs). */
const PUSHER_LOADGEN = join(dirname(fileURLToPath(import.meta.url)), 'pusher-loadgen.mjs');
/** The `ticker` scenario's load (`gen: 'ticker'`): keyed quotes, slow readers, permessage-deflate (ticker-loadgen.mjs). */
const TICKER_LOADGEN = join(dirname(fileURLToPath(import.meta.url)), 'ticker-loadgen.mjs');
let nextAddr = 2;
/** A fresh loopback source address (127.0.0.2 … 127.0.0.250, then round again). */
export function sourceAddress() {
  const a = `127.0.0.${nextAddr}`;
  nextAddr = nextAddr >= 250 ? 2 : nextAddr + 1;
  return a;
}

export function waitMsg(child, pred, ms, what) {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      child.off('message', on);
      rej(new Error(`timeout (${ms} ms) waiting for ${what}`));
    }, ms);
    const on = (m) => {
      if (m.ev === 'fatal') {
        clearTimeout(timer);
        child.off('message', on);
        rej(new Error(m.error));
      } else if (pred(m)) {
        clearTimeout(timer);
        child.off('message', on);
        res(m);
      }
    };
    child.on('message', on);
  });
}

export function ask(child, cmd, ev, extra = {}, ms = 30000) {
  const p = waitMsg(child, (m) => m.ev === ev, ms, `${ev} from load pid ${child.pid}`);
  child.send({ cmd, ...extra });
  return p;
}

/** One load-generator child with its role config (see loadgen.mjs). */
export function spawnLoad(cfg, core = 1) {
  const pusher = cfg.proto === 'pusher';
  const ticker = cfg.gen === 'ticker';
  const script = ticker ? TICKER_LOADGEN : pusher ? PUSHER_LOADGEN : LOADGEN;
  const child = start(`load ${pusher ? 'pusher ' : ticker ? 'ticker ' : ''}${cfg.role}`, process.execPath, [script], { core, ipc: true });
  child.send({ cmd: 'open', localAddress: sourceAddress(), ...cfg });
  return child;
}

/**
 * `n` members over `procs` children (per-child config from `perProc(k)` merged in), waits until all joined.
 * Returns { gens, joined, failures, refused, seconds }.
 */
export async function openMembers({ n, procs, timeoutMs = 300000, perProc = () => ({}), ...common }) {
  const per = Math.ceil(n / procs);
  const gens = [];
  const t0 = Date.now();
  for (let k = 0; k < procs; k++) {
    const count = Math.min(per, n - per * k);
    if (count <= 0) break;
    gens.push(spawnLoad({ role: 'members', n: count, userPrefix: `u${k}-`, roomOffset: k * per, ...common, ...perProc(k) }));
  }
  let readies;
  try {
    readies = await Promise.all(gens.map((g) => waitMsg(g, (m) => m.ev === 'ready', timeoutMs, 'members ready')));
  } catch (err) {
    // The caller never gets these children: stop them here (their scenario's owner would too, at its end).
    await closeLoad(gens);
    throw err;
  }
  return {
    gens,
    joined: readies.reduce((s, r) => s + r.joined, 0),
    failures: readies.reduce((s, r) => s + r.failures, 0),
    refused: readies.reduce((s, r) => s + r.refused, 0),
    seconds: (Date.now() - t0) / 1000,
  };
}

export async function closeLoad(children) {
  for (const c of children) {
    try {
      c.send({ cmd: 'close' });
    } catch {
      /* gone */
    }
  }
  await Promise.all(children.map((c) => stop(c, 'SIGKILL', 3000).catch(() => undefined)));
}

/** Every member process's counters; with `expect`, also what its members lack of `expect` messages each. */
export const statsOf = (gens, expect) => Promise.all(gens.map((g) => ask(g, 'stats', 'stats', expect === undefined ? {} : { expect })));
export const latencyOf = async (gens) => (await Promise.all(gens.map((g) => ask(g, 'latency', 'latency')))).flatMap((x) => x.lat);
