/**
 * The DurableLog conformance suite against JetStream (a throwaway `nats-server -js`): every test gets
 * its own stream and subject prefix, deleted afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { openNats } from '../../src/connections/nats.js';
import { openJetStreamDurableLog } from '../../src/engines/durablelog/jetstream.js';
import { PipelinedPublisher } from '../../src/engines/durablelog/jetstream-acks.js';
import { startNatsServer, type TestServer } from '../helpers/servers.js';
import { durableLogConformance } from './durablelog.suite.js';

let nats: TestServer | undefined;
let n = 0;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
}, 60_000);

afterAll(async () => {
  await nats?.dispose();
});

async function fresh(extra: { publishTimeoutMs?: number } = {}) {
  const nc = await openNats({ url: nats!.url });
  n += 1;
  const stream = `T${n}`;
  const log = await openJetStreamDurableLog(nc, { stream, subjectPrefix: `t${n}`, consumer: 'w', ackWaitMs: 3_000, lagPollMs: 25, ...extra });
  return {
    nc,
    log,
    async cleanup() {
      await log.close();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
    },
  };
}

describe('jetstream', () => {
  durableLogConformance('jetstream', async () => {
    const { log, cleanup } = await fresh();
    return { log, ackMeansCommitted: false, cleanup };
  });

  it('creates the stream with the configured limits and updates them at the next start', async () => {
    const { nc, cleanup } = await fresh();
    const jsm = await jetstreamManager(nc);
    const stream = `T${n}`;
    expect((await jsm.streams.info(stream)).config.subjects).toEqual([`t${n}.>`]);
    const again = await openJetStreamDurableLog(nc, { stream, subjectPrefix: `t${n}`, consumer: 'w', maxAgeMs: 60_000, maxBytes: 1_000_000 });
    const info = await jsm.streams.info(stream);
    expect(info.config.max_age).toBe(60_000 * 1_000_000);
    expect(info.config.max_bytes).toBe(1_000_000);
    await again.close();
    await cleanup();
  });

  it('finds the newest stored message of a room (sequencer seed)', async () => {
    const { log, cleanup } = await fresh();
    const m = (seq: number) => ({ tenant: 'acme', room: 'r', seq, epoch: 'E', from: 'u', ts: 1, data: seq });
    expect(await log.last({ tenant: 'acme', room: 'r' })).toBeNull();
    await Promise.all([1, 2, 3].map((s) => log.append(m(s))));
    expect((await log.last({ tenant: 'acme', room: 'r' }))?.seq).toBe(3);
    await cleanup();
  });

  it('rejects appends while the server is down (no false ack) and accepts them again after a restart', async () => {
    const { log, cleanup } = await fresh({ publishTimeoutMs: 1_000 });
    const m = (seq: number) => ({ tenant: 'acme', room: 'down', seq, epoch: 'E', from: 'u', ts: 1, data: seq });
    await log.append(m(1));
    await nats!.stop();
    await expect(log.append(m(2))).rejects.toThrow(/jetstream/);
    expect(log.health().ok).toBe(false);
    await nats!.restart();
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await log.append(m(2));
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect((await log.last({ tenant: 'acme', room: 'down' }))?.seq).toBe(2);
    await cleanup();
  }, 60_000);

  it('pipelined acks: stored once per msg id, a subject no stream captures and a silent subject are rejected, not acked', async () => {
    const { nc, cleanup } = await fresh();
    const pub = new PipelinedPublisher(nc, 300);
    const subject = `t${n}.acme.r`;
    const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => pub.publish(subject, `{"i":${i}}`, `id-${i}`)));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(500);
    expect(acks.every((a) => a.stream === `T${n}` && a.duplicate !== true)).toBe(true);
    const again = await pub.publish(subject, '{"i":7}', 'id-7');
    expect(again.duplicate).toBe(true);
    expect(again.seq).toBe(acks[7]!.seq);
    await expect(pub.publish('nobody.captures.this', '{}', 'x')).rejects.toThrow(/no responders/);
    // A subscriber that never answers: the publish times out instead of being acked.
    const silent = nc.subscribe('silent.subject', { callback: () => undefined });
    await expect(pub.publish('silent.subject', '{}', 'y')).rejects.toThrow(/no ack within 300 ms/);
    silent.unsubscribe();
    const pending = pub.publish(subject, '{}', 'z');
    pub.close();
    await expect(pending).rejects.toThrow(/closed/);
    expect(pub.inFlight).toBe(0);
    await cleanup();
  });

  it('a publish awaiting its ack when the connection drops is rejected at once, not after its timeout', async () => {
    const nc = await openNats({ url: nats!.url });
    const pub = new PipelinedPublisher(nc, 60_000);
    const silent = nc.subscribe('silent.drop', { callback: () => undefined });
    await nc.flush();
    const pending = pub.publish('silent.drop', '{}', 'drop-1');
    const outcome = pending.then(
      () => 'acked',
      (err: Error) => err.message,
    );
    await nc.flush();
    await nats!.kill();
    // Far below the 60 s timeout: the drop itself answers it.
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<string>((r) => (timer = setTimeout(() => r('still pending 15 s after the drop'), 15_000)));
    expect(await Promise.race([outcome, waited])).toMatch(/connection lost/);
    clearTimeout(timer);
    expect(pub.inFlight).toBe(0);
    silent.unsubscribe();
    pub.close();
    await nats!.restart();
    await nc.close();
  }, 60_000);

  it('a retry of the same message is acked once stored; another message under a reused seq is rejected, not acked', async () => {
    const { log, cleanup } = await fresh();
    const m = { tenant: 'acme', room: 'reuse', seq: 1, epoch: 'E', from: 'u', ts: 1, data: 'first' };
    await log.append(m);
    await log.append({ ...m }); // a retry: duplicate of the very same message
    await expect(log.append({ ...m, ts: 2, data: 'other' })).rejects.toThrow(/sequence reused/);
    expect((await log.last({ tenant: 'acme', room: 'reuse' }))?.data).toBe('first');
    await cleanup();
  });
});
