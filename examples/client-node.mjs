// Switchboard client SDK from Node: two users in a room, a publish that survives a reconnect, history.
//
//   npm run build && npm start            # a dev node on ws://localhost:8080/ws
//   node examples/client-node.mjs [ws://localhost:8080/ws]
//
// In this repository `@switchboard/client` is the workspace package packages/client (built by `npm run build`);
// in an app: `npm install @switchboard/client ws`.
// Node 20 has no global WebSocket, so the `ws` package's constructor is passed in (browsers need nothing).
import WebSocket from 'ws';
import { connect, SwitchboardClientError } from '@switchboard/client';

const url = process.argv[2] ?? 'ws://localhost:8080/ws';
const log = (...args) => console.log(new Date().toISOString().slice(11, 23), ...args);

function client(user) {
  const c = connect(url, { WebSocket, user }); // dev mode; with auth: { WebSocket, getToken: async () => fetchJwt() }
  c.on('state', ({ from, to, attempt, delayMs, error }) =>
    log(`${user}: ${from} → ${to}${attempt ? ` (attempt ${attempt} in ${delayMs} ms)` : ''}${error ? `: ${error.code} ${error.message}` : ''}`),
  );
  return c;
}

const alice = client('alice');
const bob = client('bob');

const aliceRoom = alice.room('lobby');
const bobRoom = bob.room('lobby');
bobRoom.on('message', (m) => log(`bob got #${m.seq} from ${m.from}:`, m.data));
bobRoom.on('presence', (d) =>
  log(
    'bob sees presence:',
    d.joined.map((j) => `+${j.user}`),
    d.left.map((l) => `-${l.user}`),
  ),
);
bobRoom.on('reset', async (e) => {
  log(`bob: reset (${e.reason}); reloading up to #${e.position.seq}`);
  const page = await bobRoom.reloadFromHistory({ limit: 20 });
  log(`bob reloaded ${page.length} messages`);
});

const giveUp = setTimeout(() => {
  log(`no connection to ${url} after 15 s: is \`npm start\` running?`);
  alice.close();
  bob.close();
}, 15_000);

try {
  // Called before the connection is up: the publish waits in the offline queue (with its idempotency id)
  // and goes out once the room is joined; after a disconnect it is retried with the same id, stored once.
  const { seq, epoch } = await aliceRoom.publish({ text: 'hello bob' });
  clearTimeout(giveUp);
  log(`alice's message stored as #${seq} (epoch ${epoch})`);
  const again = await aliceRoom.publish({ text: 'same idem, same message' }, { idem: `alice-${epoch}-${seq}` });
  const dup = await aliceRoom.publish({ text: 'same idem, same message' }, { idem: `alice-${epoch}-${seq}` });
  log(`an explicit idem twice: #${again.seq} then #${dup.seq} (duplicate: ${dup.duplicate})`);

  const members = await aliceRoom.presence();
  log('members:', members.map((m) => `${m.user}${m.online ? '' : ' (offline)'}`).join(', '));
  const { messages, more } = await aliceRoom.history({ limit: 5 });
  log(`history: ${messages.map((m) => `#${m.seq}`).join(' ')}${more ? ' …' : ''}`);
} catch (err) {
  if (err instanceof SwitchboardClientError) log(`failed: ${err.code} (retryable: ${err.retryable}): ${err.message}`);
  else throw err;
} finally {
  await new Promise((r) => setTimeout(r, 300)); // let bob print what arrived
  alice.close();
  bob.close();
}
