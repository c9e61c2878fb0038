/**
 * Part (c) of scenario `pusher`: presence correctness across 3 nodes under churn. Three nodes of one system
 * (Switchboard with nats-server, redis-server and PostgreSQL as scenario 4 runs it; Soketi with its Redis
 * adapter on the same redis-server), an observer subscribed first to `presence-churn` on node 0, then
 * `pusherChurnUsers` users opening and closing connections on random nodes for `pusherChurnSeconds`
 * (`pusherChurnRate` operations/s; a user holds 0, 1 or 2 subscribed connections, two "tabs" possibly on two
 * nodes; a subscription ends by closing its connection or, half the time, by `pusher:unsubscribe`),
 * each subscription authorized with the app secret (the `pusher` SDK's authorizeChannel, as a backend
 * would). The clients speak the Pusher protocol on `ws`, in this process (core 1), as pusher-js does.
 *
 * Checked once the churn stopped (polled until right or `pusherChurnSettleS` passed):
 *   - every node's `GET /apps/<id>/channels/presence-churn/users` and `user_count` equal the users actually
 *     subscribed (and the observer);
 *   - the observer got exactly one `member_added` per user join (0 → 1 connection) and one `member_removed` per
 *     leave (1 → 0), alternating, and its member list (built from those events) equals the truth.
 */
import Pusher from 'pusher';
import WebSocket from 'ws';
import { checkMemberEvents, compareMembers, frameData, PresenceTruth, PUSHER_PONG_FRAME, pusherPath, subscribeFrame } from '../lib/pusher-frames.mjs';
import { log, sleep } from '../lib/procs.mjs';
import { startSoketi } from '../lib/soketi.mjs';
import { round } from '../lib/stats.mjs';
import { startSystem } from '../lib/systems.mjs';
import { getInfra } from './cluster.mjs';
import { BENCH_APP, sbPusherFlags } from './pusher.mjs';

const CHANNEL = 'presence-churn';
const OBSERVER = 'observer';

/**
 * One Pusher client on `ws`, subscribed to CHANNEL as `user`: resolves once subscription_succeeded arrived.
 * `onMember(kind, user)` gets its member events.
 */
function presenceClient(port, signer, user, onMember) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${pusherPath(BENCH_APP.key)}`);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`user ${user}: not subscribed within 15 s`));
    }, 15000);
    ws.on('message', (raw) => {
      const f = frameData(raw.toString());
      if (f.event === 'pusher:connection_established') {
        const auth = signer.authorizeChannel(f.data.socket_id, CHANNEL, { user_id: user, user_info: { name: user } });
        ws.send(subscribeFrame(CHANNEL, auth.auth, auth.channel_data));
      } else if (f.event === 'pusher:ping') ws.send(PUSHER_PONG_FRAME);
      else if (f.event === 'pusher_internal:subscription_succeeded') {
        clearTimeout(timer);
        resolve({ ws, hash: f.data.presence });
      } else if (f.event === 'pusher:subscription_error' || f.event === 'pusher:error') {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error(`user ${user}: ${JSON.stringify(f.data)}`));
      } else if (f.event === 'pusher_internal:member_added') onMember?.('added', String(f.data.user_id));
      else if (f.event === 'pusher_internal:member_removed') onMember?.('removed', String(f.data.user_id));
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const closeWs = (ws) =>
  new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close();
    setTimeout(() => {
      ws.terminate();
      resolve();
    }, 3000).unref();
  });

/** Three nodes of `kind`; returns them (each with a port) and a stop(). */
async function startNodes(kind, o, inf) {
  const nodes = [];
  const redisPort = Number(new URL(inf.redisUrl).port);
  for (let i = 0; i < 3; i++) {
    if (kind === 'soketi') {
      nodes.push(
        await startSoketi(BENCH_APP, {
          name: `soketi-${i}`,
          redis: { host: '127.0.0.1', port: redisPort, prefix: 'bench-soketi' },
          maxPresenceMembers: o.pusherChurnUsers + 10,
        }),
      );
    } else {
      nodes.push(
        await startSystem('switchboard', {
          name: `switchboard-churn-${i}`,
          cluster: { natsUrl: inf.natsUrl, redisUrl: inf.redisUrl, dbUrl: inf.dbUrl, nodeId: `bench-churn-${i}` },
          extra: sbPusherFlags(o),
        }),
      );
    }
  }
  return nodes;
}

/** Every node's member list and user_count against the truth (plus the observer). */
async function nodeViews(sdks, expected) {
  return Promise.all(
    sdks.map(async (sdk) => {
      try {
        const users = (await (await sdk.get({ path: `/channels/${CHANNEL}/users` })).json()).users.map((u) => String(u.id));
        const info = await (await sdk.get({ path: `/channels/${CHANNEL}`, params: { info: 'user_count' } })).json();
        const cmp = compareMembers(expected, users);
        const countOk = info.user_count === expected.length;
        return { ...cmp, listOk: cmp.ok, userCount: info.user_count ?? null, countOk, ok: cmp.ok && countOk };
      } catch (err) {
        return { ok: false, error: String(err?.message ?? err) };
      }
    }),
  );
}

export async function churn(kind, o) {
  const inf = await getInfra(o);
  await inf.flushRedis();
  const nodes = await startNodes(kind, o, inf);
  const sdks = nodes.map(
    (n) => new Pusher({ appId: BENCH_APP.id, key: BENCH_APP.key, secret: BENCH_APP.secret, host: '127.0.0.1', port: String(n.port), useTLS: false }),
  );
  const open = new Set();
  try {
    const events = [];
    const observer = await presenceClient(nodes[0].port, sdks[0], OBSERVER, (k, user) => {
      if (user !== OBSERVER) events.push([k, user]);
    });
    open.add(observer.ws);
    const truth = new PresenceTruth();
    const users = Array.from({ length: o.pusherChurnUsers }, (_, i) => `user-${i}`);
    const conns = new Map(users.map((u) => [u, []]));
    const busy = new Set();
    const ops = { joins: 0, leaves: 0, opened: 0, closed: 0, unsubscribed: 0, failed: 0, failure: null, byNode: [0, 0, 0] };
    const op = async (user) => {
      busy.add(user);
      try {
        const mine = conns.get(user);
        const add = mine.length === 0 || (mine.length < 2 && Math.random() < 0.5);
        if (add) {
          const k = Math.floor(Math.random() * nodes.length);
          const c = await presenceClient(nodes[k].port, sdks[k], user);
          open.add(c.ws);
          mine.push({ ws: c.ws, node: k });
          if (mine.length === 1) ops.joins++;
          truth.opened(user);
          ops.opened++;
          ops.byNode[k]++;
        } else {
          const { ws } = mine.splice(Math.floor(Math.random() * mine.length), 1)[0];
          truth.closed(user);
          if (mine.length === 0) ops.leaves++;
          if (Math.random() < 0.5) {
            // A tab closed.
            await closeWs(ws);
            open.delete(ws);
            ops.closed++;
          } else {
            // pusher-js's unsubscribe (Echo's leave): the connection stays open, out of the channel.
            ws.send(JSON.stringify({ event: 'pusher:unsubscribe', data: { channel: CHANNEL } }));
            ops.unsubscribed++;
          }
        }
      } catch (err) {
        ops.failed++;
        ops.failure ??= String(err?.message ?? err);
      } finally {
        busy.delete(user);
      }
    };
    const t0 = Date.now();
    const endAt = t0 + o.pusherChurnSeconds * 1000;
    const pending = new Set();
    let k = 0;
    while (Date.now() < endAt) {
      const due = Math.floor(((Date.now() - t0) / 1000) * o.pusherChurnRate) + 1;
      for (; k < due; k++) {
        const user = users[Math.floor(Math.random() * users.length)];
        if (busy.has(user)) continue;
        const p = op(user);
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      await sleep(Math.max(1, t0 + (k / o.pusherChurnRate) * 1000 - Date.now()));
    }
    await Promise.all([...pending]);
    const churnS = (Date.now() - t0) / 1000;
    log(
      `pusher churn ${kind}: ${ops.opened} opened, ${ops.closed} closed (${ops.joins} joins, ${ops.leaves} leaves) in ${round(churnS, 1)} s, ${ops.failed} failed`,
    );
    // Settle: poll until every node and the observer agree with the truth, or the deadline.
    const expected = [...truth.present(), OBSERVER];
    const settleStart = Date.now();
    let views;
    let evCheck;
    for (;;) {
      views = await nodeViews(sdks, expected);
      evCheck = checkMemberEvents(events, truth);
      if ((views.every((v) => v.ok) && evCheck.ok) || Date.now() - settleStart > o.pusherChurnSettleS * 1000) break;
      await sleep(250);
    }
    const settledS = round((Date.now() - settleStart) / 1000, 1);
    const agreed = views.every((v) => v.ok) && evCheck.ok;
    log(`pusher churn ${kind}: ${agreed ? 'every node and the observer agree' : 'DISAGREE'} after ${settledS} s; events ${JSON.stringify(evCheck)}`);
    return {
      nodes: nodes.length,
      users: o.pusherChurnUsers,
      seconds: round(churnS, 1),
      ops,
      present: expected.length - 1,
      // Users whose subscribed connections are on two nodes at the end (a count that sums nodes counts them twice).
      presentOnTwoNodes: [...conns.values()].filter((m) => new Set(m.map((x) => x.node)).size > 1).length,
      memberEvents: events.length,
      correct: agreed,
      settledS,
      nodeLists: views.map((v) => ({
        ok: v.ok,
        listOk: v.listOk,
        countOk: v.countOk,
        listed: v.listed,
        userCount: v.userCount,
        missing: v.missing?.length,
        extra: v.extra?.length,
        error: v.error,
      })),
      nodeListSamples: views.map((v) => ({ missing: v.missing?.slice(0, 5), extra: v.extra?.slice(0, 5) })),
      events: evCheck,
    };
  } finally {
    await Promise.all([...open].map((ws) => closeWs(ws)));
    await Promise.all(nodes.map((n) => n.stop()));
  }
}
