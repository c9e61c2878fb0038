/** Who is in the room: online users first, then the others with when they were last seen. */
import type { PresenceDiff, PresenceMember } from '../../../src/client/index.js';
import { h, replace } from '../shared/dom.js';
import { ago } from '../shared/format.js';

interface Person {
  online: boolean;
  lastSeen: number;
}

export class PresenceList {
  readonly el: HTMLElement;
  private readonly list: HTMLUListElement;
  private readonly title: HTMLHeadingElement;
  private readonly people = new Map<string, Person>();

  /** `me` is the user id the node assigned; set it again (then re-render) once connected. */
  constructor(public me: string) {
    this.list = h('ul', { 'aria-label': 'People in this room' });
    this.title = h('h2', {}, 'People');
    this.el = h('aside', { class: 'presence' }, this.title, this.list);
    setInterval(() => this.render(), 15_000); // keep "last seen" current
  }

  get online(): number {
    return [...this.people.values()].filter((p) => p.online).length;
  }

  set(members: PresenceMember[]): void {
    this.people.clear();
    for (const m of members) this.people.set(m.user, { online: m.online, lastSeen: m.lastSeen });
    this.render();
  }

  apply(diff: PresenceDiff): void {
    for (const j of diff.joined) this.people.set(j.user, { online: true, lastSeen: j.at });
    for (const l of diff.left) this.people.set(l.user, { online: false, lastSeen: l.lastSeen });
    this.render();
  }

  render(): void {
    const sorted = [...this.people.entries()].sort(([a, pa], [b, pb]) => Number(pb.online) - Number(pa.online) || (a < b ? -1 : 1));
    this.title.textContent = `People · ${this.online} online`;
    replace(
      this.list,
      ...sorted.map(([user, p]) =>
        h(
          'li',
          { class: p.online ? 'online' : 'offline', 'data-user': user },
          h('span', { class: 'dot', 'aria-hidden': 'true' }),
          h('span', { class: 'user' }, user === this.me ? `${user} (you)` : user),
          h('span', { class: 'seen' }, p.online ? 'online' : `last seen ${ago(p.lastSeen)}`),
        ),
      ),
    );
  }
}
