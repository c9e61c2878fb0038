/**
 * The message list: one `<li>` per message, kept in seq order and keyed by seq, so a message delivered
 * twice (history overlapping live delivery) is shown once. "Load earlier" pages back through history.
 */
import type { Message } from '../../../src/client/index.js';
import { h } from '../shared/dom.js';
import { clock } from '../shared/format.js';

export class MessageList {
  readonly el: HTMLUListElement;
  private readonly bySeq = new Map<number, HTMLLIElement>();
  private readonly more: HTMLButtonElement;
  private epoch: string | null = null;
  private newest = 0;

  constructor(
    /** The user id the node assigned (the typed name in --dev mode, the token's subject otherwise). */
    public me: string,
    loadEarlier: (beforeSeq: number) => Promise<{ messages: Message[]; more: boolean }>,
  ) {
    this.more = h('button', { class: 'more ghost', type: 'button', hidden: true }, 'Load earlier messages');
    this.el = h('ul', { class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages' }, this.more);
    const earlier = async (): Promise<void> => {
      const oldest = this.oldestSeq();
      if (oldest === null || oldest <= 1 || this.more.disabled) return;
      this.more.disabled = true;
      try {
        const page = await loadEarlier(oldest);
        const height = this.el.scrollHeight;
        for (const m of page.messages) this.add(m, false);
        this.el.scrollTop += this.el.scrollHeight - height; // keep what the reader looked at in place
        this.setMore(page.more);
      } finally {
        this.more.disabled = false;
      }
    };
    this.more.addEventListener('click', () => void earlier());
    this.el.addEventListener('scroll', () => {
      if (this.el.scrollTop < 40 && !this.more.hidden) void earlier();
    });
  }

  get count(): number {
    return this.bySeq.size;
  }

  setMore(more: boolean): void {
    this.more.hidden = !more;
  }

  /** Shows a message once; `follow` scrolls to it if the reader was at the bottom. */
  add(m: Message, follow = true): void {
    if (this.epoch !== null && m.epoch !== this.epoch) this.clear(); // the room's sequence restarted
    this.epoch = m.epoch;
    if (this.bySeq.has(m.seq)) return;
    const atBottom = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 60;
    const text = typeof m.data === 'object' && m.data !== null && 'text' in m.data && typeof m.data.text === 'string' ? m.data.text : JSON.stringify(m.data);
    const li = h(
      'li',
      { class: m.from === this.me ? 'msg own' : 'msg', 'data-seq': String(m.seq) },
      h('div', { class: 'meta' }, h('span', { class: 'from' }, m.from), h('time', { datetime: new Date(m.ts).toISOString() }, clock(m.ts))),
      h('div', { class: 'text' }, text),
    );
    // Live messages append; only history pages (older seqs) need the position searched.
    let before: HTMLLIElement | null = null;
    if (m.seq < this.newest) {
      let next = Infinity;
      for (const seq of this.bySeq.keys()) if (seq > m.seq && seq < next) next = seq;
      before = this.bySeq.get(next) ?? null;
    }
    this.el.insertBefore(li, before);
    this.newest = Math.max(this.newest, m.seq);
    this.bySeq.set(m.seq, li);
    if (follow && atBottom) this.el.scrollTop = this.el.scrollHeight;
  }

  clear(): void {
    for (const li of this.bySeq.values()) li.remove();
    this.bySeq.clear();
    this.epoch = null;
    this.newest = 0;
  }

  scrollToEnd(): void {
    this.el.scrollTop = this.el.scrollHeight;
  }

  private oldestSeq(): number | null {
    let min: number | null = null;
    for (const s of this.bySeq.keys()) if (min === null || s < min) min = s;
    return min;
  }
}
