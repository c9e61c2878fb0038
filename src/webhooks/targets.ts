/**
 * Where webhook events go: the configured URLs of native tenants (`webhooks`) and Pusher apps
 * (`pusherApps[].webhooks`), compiled once, with what each receives (docs/hooks.md §Configuration).
 */
import { compilePatterns, type RoomMatcher } from '../auth/patterns.js';
import type { Config } from '../config/schema.js';
import type { SettleScope } from '../engines/presence/settle.js';
import type { RoomRef } from '../engines/types.js';
import type { WebhookEventName } from '../engines/webhookqueue/queue.js';

export interface WebhookTargetSpec {
  /** Unique among targets: the tenant and the URL. */
  readonly id: string;
  readonly tenant: string;
  readonly url: string;
  readonly format: 'native' | 'pusher';
  readonly secret: string;
  /** Pusher apps: the app key (`X-Pusher-Key`). */
  readonly key?: string;
  readonly events: ReadonlySet<WebhookEventName>;
  readonly rooms: RoomMatcher;
  readonly clientRooms: RoomMatcher;
}

const PRESENCE_EVENTS: readonly WebhookEventName[] = ['room_occupied', 'room_vacated', 'member_added', 'member_removed'];
/** Rooms whose scope is remembered (then the cache starts afresh). */
const SCOPE_CACHE = 10_000;

export class WebhookTargets {
  private readonly byTenant = new Map<string, WebhookTargetSpec[]>();
  private readonly byId = new Map<string, WebhookTargetSpec>();
  private readonly scopes = new Map<string, SettleScope | null>();

  constructor(
    config: Pick<Config, 'webhooks' | 'pusherApps'>,
    private readonly graceMs: number,
  ) {
    for (const w of config.webhooks) this.add({ ...w, format: 'native' });
    for (const app of config.pusherApps) for (const w of app.webhooks) this.add({ ...w, tenant: app.id, secret: app.secret, key: app.key, format: 'pusher' });
  }

  private add(w: {
    tenant: string;
    url: string;
    secret: string;
    key?: string;
    format: 'native' | 'pusher';
    events: readonly WebhookEventName[];
    rooms: readonly string[];
    clientEventRooms: readonly string[];
  }): void {
    const id = `${w.tenant} ${w.url}`;
    if (this.byId.has(id)) return;
    const spec: WebhookTargetSpec = {
      id,
      tenant: w.tenant,
      url: w.url,
      format: w.format,
      secret: w.secret,
      ...(w.key !== undefined ? { key: w.key } : {}),
      events: new Set(w.events),
      rooms: compilePatterns(w.rooms),
      clientRooms: w.events.includes('client_event') || w.clientEventRooms.length > 0 ? compilePatterns(w.clientEventRooms) : () => false,
    };
    this.byId.set(id, spec);
    const list = this.byTenant.get(w.tenant) ?? [];
    list.push(spec);
    this.byTenant.set(w.tenant, list);
  }

  /** Whether any webhook is configured at all. */
  get enabled(): boolean {
    return this.byId.size > 0;
  }

  get(id: string): WebhookTargetSpec | undefined {
    return this.byId.get(id);
  }

  /**
   * What presence settling must track in a room: null when no target wants its occupancy or member events. Member
   * events of a Pusher app are for presence channels only (its other channels' members are connections, not users).
   */
  scope(ref: RoomRef): SettleScope | null {
    const targets = this.byTenant.get(ref.tenant);
    if (targets === undefined) return null;
    const key = `${ref.tenant}/${ref.room}`;
    const cached = this.scopes.get(key);
    if (cached !== undefined) return cached;
    let occupancy = false;
    let members = false;
    for (const t of targets) {
      if (!t.rooms(ref.room)) continue;
      if (t.events.has('room_occupied') || t.events.has('room_vacated')) occupancy = true;
      if ((t.events.has('member_added') || t.events.has('member_removed')) && (t.format === 'native' || ref.room.startsWith('presence-'))) members = true;
    }
    const scope = occupancy || members ? { members, graceMs: this.graceMs } : null;
    if (this.scopes.size >= SCOPE_CACHE) this.scopes.clear();
    this.scopes.set(key, scope);
    return scope;
  }

  /** Whether a client event in this room goes anywhere (O(1) for a tenant without webhooks). */
  wantsClientEvent(ref: RoomRef): boolean {
    return this.byTenant.get(ref.tenant)?.some((t) => t.clientRooms(ref.room)) === true;
  }

  /** The targets that receive an event of this name in this room. */
  receivers(tenant: string, room: string, name: WebhookEventName): WebhookTargetSpec[] {
    const targets = this.byTenant.get(tenant) ?? [];
    if (name === 'client_event') return targets.filter((t) => t.clientRooms(room));
    if (!PRESENCE_EVENTS.includes(name)) return [];
    const member = name === 'member_added' || name === 'member_removed';
    return targets.filter((t) => t.events.has(name) && t.rooms(room) && (!member || t.format === 'native' || room.startsWith('presence-')));
  }
}
