/** The name rules of protocol/names.ts: the widened room alphabet, event names, and `roomToken`. */
import { describe, expect, it } from 'vitest';
import { isEventName, isIdemId, isRoomName, roomToken } from '../../src/protocol/names.js';
import { roomSubject } from '../../src/messaging/subjects.js';

/** Every character of the room alphabet. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:@~=,.;';

describe('room names', () => {
  it("accept Pusher's channel names and the old alphabet, 1–164 characters", () => {
    for (const name of ['lobby', 'team:a@b~c', 'private-App.Models.User.1', 'presence-chat.1', 'private-encrypted-x', 'a=b,c;d', '.', '..', ALPHABET]) {
      expect(isRoomName(name)).toBe(true);
    }
    expect(isRoomName('r'.repeat(164))).toBe(true);
    for (const name of ['', 'r'.repeat(165), 'a b', 'a/b', 'a{b', 'a}b', 'a%b', 'a*b', 'a>b', 'a#b', 'ü', 'a\tb', 42, null]) {
      expect(isRoomName(name)).toBe(false);
    }
  });
});

describe('event names', () => {
  it('are 1–200 printable ASCII characters without spaces', () => {
    for (const name of ['my-event', 'client-typing', '.foo', 'App\\Events\\OrderShipped', 'pusher:subscribe', '"{}"', 'e'.repeat(200)]) {
      expect(isEventName(name)).toBe(true);
    }
    for (const name of ['', 'e'.repeat(201), 'a b', 'tab\t', 'ü', 'new\nline', undefined, 1]) expect(isEventName(name)).toBe(false);
    expect(isIdemId('x')).toBe(true);
  });
});

describe('roomToken', () => {
  it('is the identity for every room name without a dot (the old names: existing subjects unchanged)', () => {
    for (const name of ['lobby', 'team:a@b~c', 'a=b,c;d', ALPHABET.replace('.', ''), 'r'.repeat(164)]) expect(roomToken(name)).toBe(name);
    expect(roomSubject({ tenant: 'acme', room: 'lobby' })).toBe('sb.r.acme.lobby');
  });

  it('writes each dot as %, and the subject of a dotted room has exactly four tokens', () => {
    expect(roomToken('private-App.Models.User.1')).toBe('private-App%Models%User%1');
    expect(roomToken('..')).toBe('%%');
    expect(roomSubject({ tenant: 'acme', room: 'x.y' })).toBe('sb.r.acme.x%y');
    expect(roomSubject({ tenant: 'acme', room: 'a.b.c' }).split('.')).toHaveLength(4);
  });

  it('never emits . * > or whitespace, and is injective (exhaustively over short names of the alphabet)', () => {
    const seen = new Map<string, string>();
    const chars = [...ALPHABET];
    const names: string[] = [...chars];
    for (const a of chars) for (const b of chars) names.push(a + b);
    // Three-character names over the characters that matter most (the new ones, their neighbours, and a letter).
    const special = [...'.=,;:@~_-x'];
    for (const a of special) for (const b of special) for (const c of special) names.push(a + b + c);
    for (const name of names) {
      expect(isRoomName(name)).toBe(true);
      const token = roomToken(name);
      expect(token).not.toMatch(/[.*>\s]/);
      expect(token.length).toBe(name.length);
      const other = seen.get(token);
      if (other !== undefined && other !== name) throw new Error(`${name} and ${other} share the token ${token}`);
      seen.set(token, name);
    }
    expect(seen.size).toBe(new Set(names).size);
  });
});
