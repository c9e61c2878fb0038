/**
 * The chat screen for one room, on the client SDK: live messages, history paging, presence, and the
 * connection state. Returns the element and a `close()` that disconnects.
 */
import { connect, type Message } from '../../../src/client/index.js';
import { h } from '../shared/dom.js';
import { MessageList } from './messages.js';
import { PresenceList } from './presence.js';
import { wsUrl, type ChatSettings } from './settings.js';
import { ConnectionStatus } from './status.js';

const PAGE = 50;

export function chatView(s: ChatSettings, onLeave: () => void): HTMLElement {
  const client = connect(wsUrl(), s.token !== undefined ? { token: s.token } : { user: s.name });
  const room = client.room(s.room);
  const status = new ConnectionStatus();
  // With a token, who this is is known once connected (the token's subject); until then nobody is "me".
  const me = s.token !== undefined ? '' : s.name;
  const list = new MessageList(me, (before) => room.history({ before, limit: PAGE }));
  const people = new PresenceList(me);

  const refreshPresence = (): void => {
    room.presence().then(
      (members) => people.set(members),
      () => undefined,
    );
  };
  const reload = async (): Promise<void> => {
    const messages: Message[] = await room.reloadFromHistory({ limit: PAGE });
    list.clear();
    for (const m of messages) list.add(m, false);
    list.setMore((messages[0]?.seq ?? 1) > 1);
    list.scrollToEnd();
  };

  const meLabel = h('span', { class: 'muted me' }, me === '' ? '' : `as ${me}`);
  client.on('state', (change) => {
    // With a token the node decides who this is (the token's subject), not the name typed in the form.
    const user = client.info?.user;
    if (user !== undefined && user !== list.me) {
      list.me = user;
      people.me = user;
      people.render();
      meLabel.textContent = `as ${user}`;
    }
    status.state(change, client.info?.node ?? null);
  });
  room.on('message', (m) => list.add(m));
  room.on('presence', (diff) => (diff.truncated !== undefined ? refreshPresence() : people.apply(diff)));
  let first = true;
  room.on('joined', (j) => {
    if (first) {
      first = false;
      reload().catch((err: Error) => status.error(`History is unavailable: ${err.message}`));
    } else if (j.recovery === 'recovered') status.recovered(j.missed);
    refreshPresence();
  });
  room.on('reset', () => {
    status.reset();
    reload().catch((err: Error) => status.error(`History is unavailable: ${err.message}`));
  });
  room.on('error', (err) => status.error(err.message));

  const input = h('input', { name: 'text', placeholder: `Message #${s.room}`, autocomplete: 'off', maxlength: '4000', 'aria-label': 'Message' });
  const composer = h('form', { class: 'composer' }, input, h('button', { type: 'submit' }, 'Send'));
  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text === '') return;
    input.value = '';
    room.publish({ text }).catch((err: Error) => status.error(`Not sent: ${err.message}`));
  });

  const leave = h('button', { class: 'ghost', type: 'button' }, 'Leave');
  leave.addEventListener('click', () => {
    client.close();
    onLeave();
  });
  const toggle = h('button', { class: 'ghost toggle-people', type: 'button', 'aria-label': 'Show people' }, 'People');
  const view = h(
    'section',
    { class: 'chat' },
    h(
      'header',
      {},
      h('div', { class: 'brand' }, h('img', { src: '/assets/logo.svg', alt: 'Switchboard' })),
      h('span', { class: 'room' }, `#${s.room}`),
      meLabel,
      h('span', { class: 'spacer' }),
      status.node,
      status.pill,
      toggle,
      leave,
    ),
    status.banner,
    list.el,
    people.el,
    composer,
  );
  toggle.addEventListener('click', () => view.classList.toggle('show-people'));
  queueMicrotask(() => input.focus());
  return view;
}
