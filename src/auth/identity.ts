import type { RoomMatcher } from './patterns.js';

/** Who a connection is and what it may do, from its token (or dev mode). */
export interface Identity {
  readonly user: string;
  readonly tenant: string;
  readonly canJoin: RoomMatcher;
  readonly canPublish: RoomMatcher;
  /** Service topics (`orders.create`) this connection may `send` to / `rpc`. */
  readonly canSend: RoomMatcher;
  readonly canCall: RoomMatcher;
  /** Token expiry in ms since the epoch; undefined when the token does not expire. */
  readonly expiresAt?: number;
  /** The token's `jti`, when it has one (revocation by token id). */
  readonly tokenId?: string;
  /** The token's `iat` in ms, when it has one (a user's revocation covers tokens issued before it). */
  readonly issuedAt?: number;
}
