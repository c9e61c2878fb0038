/**
 * Backplane: node-to-node publish/subscribe on subjects.
 *
 * Contract (checked by test/conformance/backplane.suite.ts for every implementation):
 * - `publish` delivers the payload bytes unchanged to every current subscription of that exact subject,
 *   on every node (including the publishing node), at most once per subscription.
 * - Messages published by one publisher on one subject arrive at each subscriber in publish order.
 * - Interest based: a node receives only subjects it subscribed to; after `unsubscribe` resolves it
 *   receives nothing more on that subscription.
 * - `subscribe` resolves once the subscription is active on the broker: a publish made after that
 *   (from any node) reaches it.
 * - No durability: a subscriber that is not subscribed when a message is published never sees it.
 *   Durability is the DurableLog's job; ordering and gap repair are the gateway's (RoomLog fetch).
 * - Failures surface: `publish` rejects if the broker cannot take the message; `health()` reports it.
 *   Rejections are EngineErrors (engines/errors.ts): `closed` after `close()`, `unavailable` while the
 *   broker is unreachable (with the driver's error as `cause`).
 *
 * Subjects are dot-separated tokens without `.`, `*`, `>` or whitespace (see messaging/subjects.ts: room
 * names pass through protocol/names.ts `roomToken`); implementations may map them to their broker's own naming.
 *
 * Node announcements (which nodes are in the cluster, with their load, for the admin page) are not a
 * method here: NodeDirectory (directory.ts) builds them on `publish`/`subscribe` of the reserved subject
 * `sb.nodes`, so every implementation has them without code of its own; the conformance suite runs them
 * against each implementation.
 */
export interface Backplane {
  readonly kind: string;
  publish(subject: string, payload: Uint8Array): Promise<void>;
  subscribe(subject: string, handler: (payload: Uint8Array) => void): Promise<BackplaneSubscription>;
  /** Healthy when connected to its broker; `detail` says why not. */
  health(): { ok: boolean; detail?: string };
  close(): Promise<void>;
}

export interface BackplaneSubscription {
  readonly subject: string;
  unsubscribe(): Promise<void>;
}
