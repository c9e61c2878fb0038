/** One card per node: connections, memory, CPU, uptime, rooms, and how fresh its announcement is. */
import { h, replace } from '../shared/dom.js';
import { bytes, duration, num } from '../shared/format.js';
import type { ClusterView } from './api.js';

export function renderNodes(el: HTMLElement, view: ClusterView): void {
  replace(
    el,
    ...view.nodes.map((n) => {
      const age = Math.max(0, (view.now - n.lastHeardMs) / 1000);
      const stale = age > (3 * view.announceIntervalMs) / 1000 / 2;
      const row = (label: string, value: string): Node[] => [h('dt', {}, label), h('dd', {}, value)];
      return h(
        'article',
        { class: 'node card', 'data-node': n.node },
        h(
          'div',
          { class: 'name' },
          h('span', { class: stale ? 'pill warn' : 'pill ok' }, h('span', { class: 'dot' })),
          n.node,
          n.self ? h('span', { class: 'muted' }, '(this node)') : null,
        ),
        h(
          'dl',
          {},
          ...row('Connections', `${n.connections} / ${n.maxConnections}`),
          ...row('Memory (RSS)', bytes(n.rssBytes)),
          ...row('Heap used', bytes(n.heapUsedBytes)),
          ...row('CPU', `${num(n.cpuPercent)} %`),
          ...row('Uptime', duration(n.uptimeS)),
          ...row('Rooms', String(n.rooms)),
          ...row('Backplane', n.backplane),
          ...row('Last heard', `${num(age)} s ago`),
        ),
      );
    }),
  );
}
