/**
 * The first screen: pick a name and a room. Names are checked with the server's own rules. With a token
 * (`#token=`) the node takes the user from the token, so the form asks for the room only.
 */
import { isRoomName, isUserId, ROOM_NAME_RULE, USER_ID_RULE } from '../../../src/protocol/names.js';
import { h } from '../shared/dom.js';
import type { ChatSettings } from './settings.js';

export function joinForm(initial: ChatSettings, onJoin: (s: ChatSettings) => void): HTMLElement {
  const withToken = initial.token !== undefined;
  const name = h('input', { name: 'name', autocomplete: 'nickname', placeholder: 'e.g. ada', required: !withToken, maxlength: '128' });
  const room = h('input', { name: 'room', placeholder: 'lobby', required: true, maxlength: '164' });
  name.value = initial.name;
  room.value = initial.room;
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'join card', 'aria-label': 'Join a room' },
    h('div', { class: 'brand' }, h('img', { src: '/assets/logo.svg', alt: '' }), 'Switchboard'),
    h('h1', {}, 'Join a room'),
    withToken ? h('p', { class: 'muted signed-in' }, 'Signed in with a token: your name comes from it.') : h('label', {}, 'Your name', name),
    h('label', {}, 'Room', room),
    h('button', { type: 'submit' }, 'Join'),
    error,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const n = name.value.trim();
    const r = room.value.trim();
    if (!withToken && !isUserId(n)) error.textContent = `Name: ${USER_ID_RULE}.`;
    else if (!isRoomName(r)) error.textContent = `Room: ${ROOM_NAME_RULE}.`;
    else onJoin({ ...initial, name: withToken ? initial.name : n, room: r });
  });
  queueMicrotask(() => (initial.name === '' && !withToken ? name : room).focus());
  return form;
}
