/** The busiest rooms of the cluster (top-N by members, then message rate). */
import { h, replace } from '../shared/dom.js';
import { num } from '../shared/format.js';
import type { ClusterView } from './api.js';

export function renderRooms(tbody: HTMLElement, view: ClusterView): void {
  if (view.rooms.length === 0) {
    replace(tbody, h('tr', {}, h('td', { colspan: '5', class: 'muted' }, 'No room has members right now.')));
    return;
  }
  replace(
    tbody,
    ...view.rooms.map((r) =>
      h(
        'tr',
        { 'data-room': r.room },
        h('td', {}, r.room),
        h('td', { class: 'muted' }, r.tenant),
        h('td', { class: 'num' }, String(r.members)),
        h('td', { class: 'num' }, num(r.rate)),
        h('td', { class: 'num' }, String(r.nodes)),
      ),
    ),
  );
}
