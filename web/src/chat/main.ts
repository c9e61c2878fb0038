/** The chat page at `/`: the join form, then the room. */
import { replace } from '../shared/dom.js';
import { chatView } from './chat-view.js';
import { joinForm } from './join-form.js';
import { loadSettings, saveSettings, type ChatSettings } from './settings.js';

const app = document.getElementById('app')!;

function showJoin(): void {
  document.title = 'Switchboard chat';
  replace(app, joinForm(loadSettings(), enter));
}

function enter(s: ChatSettings): void {
  saveSettings(s);
  const q = new URLSearchParams(location.search);
  q.set('room', s.room);
  history.replaceState(null, '', `?${q.toString()}${location.hash}`);
  document.title = `#${s.room} · Switchboard`;
  replace(app, chatView(s, showJoin));
}

const initial = loadSettings();
// A link with both ?name= and ?room= (or ?room= and #token=) opens the room directly.
const q = new URLSearchParams(location.search);
if (q.has('room') && (initial.token !== undefined || (q.has('name') && initial.name !== ''))) enter(initial);
else showJoin();
