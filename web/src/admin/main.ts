/** The admin page at `/admin`: asks for the API key if needed, then polls the cluster view. */
import { h, replace } from '../shared/dom.js';
import { fetchCluster, saveKey, savedKey, Unauthorized, type ClusterView } from './api.js';
import { Chart } from './chart.js';
import { renderNodes } from './nodes.js';
import { renderRooms } from './rooms.js';
import { Series } from './series.js';

const app = document.getElementById('app')!;
let timer: ReturnType<typeof setTimeout> | null = null;

function login(message: string): void {
  if (timer !== null) clearTimeout(timer);
  const key = h('input', { type: 'password', name: 'key', placeholder: 'API key', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    { class: 'login card', 'aria-label': 'Sign in' },
    h('div', { class: 'brand' }, h('img', { src: '/assets/logo.svg', alt: '' }), 'Switchboard admin'),
    h('p', { class: 'muted' }, 'Enter the API key the nodes were started with (--api-key).'),
    key,
    h('button', { type: 'submit' }, 'Open dashboard'),
    h('p', { class: 'error', role: 'alert' }, message),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    saveKey(key.value);
    void dashboard();
  });
  replace(app, form);
  key.focus();
}

async function dashboard(): Promise<void> {
  let first: ClusterView;
  try {
    first = await fetchCluster(savedKey());
  } catch (err) {
    if (err instanceof Unauthorized) {
      const hadKey = savedKey() !== null;
      saveKey(null);
      login(hadKey ? 'That key was refused.' : '');
      return;
    }
    throw err;
  }
  const nodes = h('div', { class: 'nodes', 'aria-label': 'Nodes' });
  const rooms = h('tbody');
  const updated = h('span', { class: 'muted updated' });
  const charts = {
    messages: new Chart(
      'Messages per second',
      [
        { label: 'published', color: '#2447c6' },
        { label: 'delivered', color: '#0e9f6e' },
      ],
      '/s',
    ),
    latency: new Chart(
      'Publish → deliver latency',
      [
        { label: 'p50', color: '#0e9f6e' },
        { label: 'p95', color: '#d97706' },
        { label: 'p99', color: '#dc2626' },
      ],
      'ms',
    ),
    reconnects: new Chart('Reconnects', [{ label: 'reconnects', color: '#7c3aed' }], '/s'),
    slow: new Chart('Slow-consumer disconnects', [{ label: 'disconnects', color: '#dc2626' }], '/s'),
  };
  const signOut = h('button', { class: 'ghost', type: 'button' }, 'Sign out');
  signOut.addEventListener('click', () => {
    saveKey(null);
    login('');
  });
  replace(
    app,
    h(
      'header',
      {},
      h('div', { class: 'brand' }, h('img', { src: '/assets/logo.svg', alt: '' }), 'Switchboard admin'),
      h('span', { class: 'spacer' }),
      updated,
      signOut,
    ),
    h('section', {}, h('h2', { class: 'nodes-title' }, 'Nodes'), nodes),
    h('section', {}, h('h2', {}, 'Live'), h('div', { class: 'charts' }, ...Object.values(charts).map((c) => c.el))),
    h(
      'section',
      { class: 'panel card' },
      h('h2', {}, 'Busiest rooms'),
      h(
        'table',
        { class: 'rooms' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'Room'),
            h('th', {}, 'Tenant'),
            h('th', { class: 'num' }, 'Members'),
            h('th', { class: 'num' }, 'Messages/s'),
            h('th', { class: 'num' }, 'Nodes'),
          ),
        ),
        rooms,
      ),
    ),
  );
  const series = new Series();
  const show = (view: ClusterView): void => {
    series.add(view);
    const pts = series.points;
    renderNodes(nodes, view);
    app.querySelector('.nodes-title')!.textContent = `Nodes · ${view.nodes.length}`;
    renderRooms(rooms, view);
    charts.messages.update([pts.map((p) => p.published), pts.map((p) => p.delivered)]);
    charts.latency.update([pts.map((p) => p.p50), pts.map((p) => p.p95), pts.map((p) => p.p99)]);
    charts.reconnects.update([pts.map((p) => p.reconnects)]);
    charts.slow.update([pts.map((p) => p.slowConsumers)]);
    updated.textContent = `via ${view.node} · ${new Date(view.now).toLocaleTimeString()}`;
  };
  show(first);
  const poll = async (): Promise<void> => {
    try {
      show(await fetchCluster(savedKey()));
    } catch (err) {
      if (err instanceof Unauthorized) return login('The key was refused.');
      updated.textContent = `not reachable: ${(err as Error).message}`;
    }
    timer = setTimeout(() => void poll(), first.announceIntervalMs);
  };
  timer = setTimeout(() => void poll(), first.announceIntervalMs);
}

dashboard().catch((err: Error) => replace(app, h('p', { class: 'error' }, `The admin API failed: ${err.message}`)));
