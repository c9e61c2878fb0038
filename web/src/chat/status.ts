/**
 * The connection as the user sees it: a pill in the header (connected to which node), and a banner for
 * what needs attention ("Reconnecting in 3 s…", "Recovered 4 missed messages").
 */
import type { StateChange } from '../../../src/client/index.js';
import { h } from '../shared/dom.js';

export class ConnectionStatus {
  readonly pill: HTMLElement;
  readonly node: HTMLElement;
  readonly banner: HTMLElement;
  private countdown: ReturnType<typeof setInterval> | null = null;
  private bannerTimer: ReturnType<typeof setTimeout> | null = null;

  constructor() {
    this.pill = h('span', { class: 'pill warn', 'data-state': 'connecting' }, h('span', { class: 'dot' }), 'Connecting…');
    this.node = h('span', { class: 'pill node', title: 'The node this tab is connected to' }, '–');
    this.banner = h('div', { class: 'banner', role: 'status', hidden: true });
  }

  state(change: StateChange, node: string | null): void {
    this.stopCountdown();
    this.pill.dataset.state = change.to;
    switch (change.to) {
      case 'connected':
        this.setPill('ok', 'Connected');
        this.node.textContent = node !== null ? `node ${node}` : '–';
        if (this.banner.dataset.kind === 'reconnecting' || this.banner.dataset.kind === 'offline') this.show('ok', 'connected', 'Connected again.', 3000);
        break;
      case 'reconnecting': {
        this.setPill('warn', 'Reconnecting');
        const until = Date.now() + (change.delayMs ?? 0);
        const tick = (): void => {
          const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
          this.show('warn', 'reconnecting', s > 0 ? `Connection lost. Reconnecting in ${s} s…` : 'Connection lost. Reconnecting…');
        };
        tick();
        this.countdown = setInterval(tick, 250);
        break;
      }
      case 'disconnected':
        this.setPill('warn', 'Disconnected');
        this.show('warn', 'offline', `Connection lost${change.error ? `: ${change.error.message}` : ''}.`);
        break;
      case 'connecting':
        this.setPill('warn', 'Connecting…');
        break;
      case 'closed':
        this.setPill('bad', 'Closed');
        this.show('bad', 'closed', change.error ? `Disconnected for good: ${change.error.message}` : 'Disconnected.');
        break;
    }
  }

  recovered(missed: number): void {
    if (missed > 0) this.show('ok', 'recovered', `Recovered ${missed} missed message${missed === 1 ? '' : 's'}.`, 6000);
  }

  reset(): void {
    this.show('warn', 'reset', 'Too much was missed to catch up message by message: the latest messages were reloaded.', 8000);
  }

  error(text: string): void {
    this.show('bad', 'error', text, 8000);
  }

  private setPill(kind: 'ok' | 'warn' | 'bad', text: string): void {
    this.pill.className = `pill ${kind}`;
    this.pill.replaceChildren(h('span', { class: 'dot' }), text);
  }

  private show(kind: 'ok' | 'warn' | 'bad', id: string, text: string, hideAfterMs?: number): void {
    if (this.bannerTimer !== null) clearTimeout(this.bannerTimer);
    this.bannerTimer = null;
    this.banner.className = `banner ${kind}`;
    this.banner.dataset.kind = id;
    this.banner.textContent = text;
    this.banner.hidden = false;
    if (hideAfterMs !== undefined) {
      this.bannerTimer = setTimeout(() => {
        this.banner.hidden = true;
        this.banner.dataset.kind = '';
      }, hideAfterMs);
    }
  }

  private stopCountdown(): void {
    if (this.countdown !== null) clearInterval(this.countdown);
    this.countdown = null;
  }
}
