/**
 * How rooms write to Pusher connections: a room message is an event on the channel of the same name (its
 * `event`, or `message` for a protocol-v1 publish without one); a user's first join / last leave of a
 * presence channel is `pusher_internal:member_added` / `member_removed`. Other channels get no presence events.
 */
import type { RoomMessage } from '../engines/types.js';
import { channelEvent, channelKind, DEFAULT_EVENT, memberAdded, memberRemoved, USER_CHANNEL_PREFIX } from '../protocol/pusher.js';
import type { RoomCodec } from '../rooms/room.js';

/** A client event on a presence channel names its sender (`user_id`), as Pusher does. */
const sender = (m: RoomMessage): string | undefined => (m.event?.startsWith('client-') === true && m.room.startsWith('presence-') ? m.from : undefined);

export const PUSHER_CODEC: RoomCodec = {
  message: (m: RoomMessage) => channelEvent(m.room, m.event ?? DEFAULT_EVENT, m.data, sender(m)),
  batchesPresence: false,
  // Pusher's protocol has no event saying what a conflate or drop room left out: its members get the messages only.
  catchupFrames: false,
  presence: (ref, change) => {
    if (channelKind(ref.room) !== 'presence') return null;
    return change.kind === 'join' ? memberAdded(ref.room, change.user, change.info) : memberRemoved(ref.room, change.user);
  },
  // Pusher's user events arrive on the user's own channel, `#server-to-user-<id>`.
  direct: (user, env) => channelEvent(`${USER_CHANNEL_PREFIX}${user}`, env.event ?? DEFAULT_EVENT, env.data),
};

/** The codec of connections that opted into the resume extension: events carry `seq` and `epoch`. */
export const PUSHER_RESUME_CODEC: RoomCodec = {
  ...PUSHER_CODEC,
  message: (m: RoomMessage) => channelEvent(m.room, m.event ?? DEFAULT_EVENT, m.data, sender(m), { seq: m.seq, epoch: m.epoch }),
};
