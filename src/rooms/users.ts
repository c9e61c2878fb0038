/**
 * Direct messages to users: the node subscribes a user's subject while that user has a connection here,
 * and writes each direct message (encoded once) to all of the user's local connections.
 */
import type { Backplane, BackplaneSubscription } from '../engines/backplane/backplane.js';
import { fewAdd, fewDelete, fewEach, fewSize, type Few } from '../util/few.js';
import { decodeEnvelope, userSubject, type DirectEnvelope } from '../messaging/subjects.js';
import type { RoomCodec } from './room.js';

export interface UserConn {
  /** How the connection's protocol writes a direct message (encoded once per codec). */
  readonly codec: Pick<RoomCodec, 'direct'>;
  send(frame: Buffer): void;
  /** Closes the connection on a terminate order; connections without it ignore the order. */
  terminate?(): void;
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
          if (env.terminate === true) {
            fewEach(created.conns, (c) => c.terminate?.());
            return;
          }
          const frames = new Map<Pick<RoomCodec, 'direct'>, Buffer>();
          fewEach(created.conns, (c) => {
            let frame = frames.get(c.codec);
            if (frame === undefined) frames.set(c.codec, (frame = c.codec.direct(user, env)));
            c.send(frame);
          });
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

  /** The user's connections registered on this node. */
  count(tenant: string, user: string): number {
    return fewSize(this.entries.get(userSubject(tenant, user))?.conns);
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
