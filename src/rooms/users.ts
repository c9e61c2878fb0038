/**
 * Direct messages to users: the node subscribes a user's subject while that user has a connection here,
 * and writes each direct message (encoded once) to all of the user's local connections.
 */
import type { Backplane, BackplaneSubscription } from '../engines/backplane/backplane.js';
import { wireFrame } from '../protocol/encode.js';
import { fewAdd, fewDelete, fewEach, type Few } from '../util/few.js';
import { decodeEnvelope, userSubject, type DirectEnvelope } from '../messaging/subjects.js';

export interface UserConn {
  send(frame: Buffer): void;
}

interface Entry {
  /** The user's local connections: usually one, so no Set until two (util/few.ts). */
  conns: Few<UserConn>;
  sub: Promise<BackplaneSubscription | null>;
}

export class UserRouter {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly backplane: Backplane,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Registers a connection; resolves when the user's subject is subscribed. */
  async add(tenant: string, user: string, conn: UserConn): Promise<void> {
    const subject = userSubject(tenant, user);
    let entry = this.entries.get(subject);
    if (entry === undefined) {
      const created = { conns: null } as Entry; // `sub` is set just below: the handler needs `created` first
      created.sub = this.backplane
        .subscribe(subject, (payload) => {
          let env: DirectEnvelope;
          try {
            env = decodeEnvelope<DirectEnvelope>(payload);
          } catch (err) {
            this.onError(err);
            return;
          }
          const frame = wireFrame({ type: 'direct', from: env.from, ts: env.ts, data: env.data });
          fewEach(created.conns, (c) => c.send(frame));
        })
        .catch((err: unknown) => {
          this.onError(err);
          return null;
        });
      entry = created;
      this.entries.set(subject, entry);
    }
    entry.conns = fewAdd(entry.conns, conn);
    await entry.sub;
  }

  remove(tenant: string, user: string, conn: UserConn): void {
    const subject = userSubject(tenant, user);
    const entry = this.entries.get(subject);
    if (entry === undefined) return;
    entry.conns = fewDelete(entry.conns, conn);
    if (entry.conns !== null) return;
    this.entries.delete(subject);
    entry.sub.then((s) => s?.unsubscribe()).catch(this.onError);
  }

  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(all.map(async (e) => (await e.sub)?.unsubscribe()));
  }
}
