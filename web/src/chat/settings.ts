/** What the chat remembers between visits (name, room) and reads from the URL (?room=, ?name=, #token=). */
const KEY = 'switchboard.chat';

export interface ChatSettings {
  name: string;
  room: string;
  /** A JWT for nodes that are not in --dev mode (from `#token=` in the URL; never stored). */
  token?: string;
}

export function loadSettings(): ChatSettings {
  let saved: Partial<ChatSettings>;
  try {
    saved = JSON.parse(localStorage.getItem(KEY) ?? '{}') as Partial<ChatSettings>;
  } catch {
    saved = {};
  }
  const q = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get('token') ?? undefined;
  return {
    name: q.get('name') ?? saved.name ?? '',
    room: q.get('room') ?? saved.room ?? 'lobby',
    ...(token !== undefined ? { token } : {}),
  };
}

export function saveSettings(s: ChatSettings): void {
  try {
    localStorage.setItem(KEY, JSON.stringify({ name: s.name, room: s.room }));
  } catch {
    /* private mode: nothing remembered */
  }
}

/** The node's WebSocket endpoint, on the host that served the page. */
export function wsUrl(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}
