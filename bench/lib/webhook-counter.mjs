/**
 * A webhook receiver for the bench: an HTTP server in the harness process that answers 200 and counts the events
 * it receives (unique by id) per name: those of some rooms decided at or after a given time (the storm's kill).
 */
import { createServer } from 'node:http';

export async function startWebhookCounter() {
  const ids = new Set();
  const events = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        for (const e of JSON.parse(Buffer.concat(chunks).toString('utf8')).events ?? []) {
          if (ids.has(e.id)) continue;
          ids.add(e.id);
          events.push({ name: e.name, ts: e.ts, room: e.room });
        }
      } catch {
        /* not counted */
      }
      res.writeHead(200).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    /** Unique events of rooms named `roomPrefix…` decided at or after `since` (ms), by name, and their total. */
    since(since, roomPrefix = '') {
      const byName = {};
      let total = 0;
      for (const e of events) {
        if (e.ts < since || !String(e.room).startsWith(roomPrefix)) continue;
        byName[e.name] = (byName[e.name] ?? 0) + 1;
        total += 1;
      }
      return { total, byName };
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
