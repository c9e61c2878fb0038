import { randomBytes } from 'node:crypto';
import { roomKey, type RoomMessage, type RoomPosition, type RoomRef } from '../types.js';
import { defaultRoomLogOptions, type AppendResult, type PublishInput, type RecoveryResult, type RoomLog, type RoomLogOptions } from './roomlog.js';
import { EngineError } from '../errors.js';

export interface MemoryRoomLogOptions extends RoomLogOptions {
  /** At most this many idempotency ids are remembered per room (oldest forgotten first). Default 10 × windowSize. */
  idemMax: number;
  /** How often windows and idempotency maps are trimmed and idle rooms evicted, ms. Default 10000. */
  sweepMs: number;
}

interface IdemEntry {
  readonly message: RoomMessage;
  readonly at: number;
}

/** Everything the log knows about one room. `window` holds consecutive seqs, oldest first. */
interface RoomState {
  seq: number;
  readonly epoch: string;
  readonly window: RoomMessage[];
  /** `${from}\u0000${idem}` -> first message; insertion order is age order. */
  readonly idem: Map<string, IdemEntry>;
  /** Last time the room was appended to or read. */
  touched: number;
  /** The publish cap's current second (ms / 1000) and the appends accepted in it. */
  rateSecond?: number;
  rateCount?: number;
}

/** A new random epoch (8 url-safe characters). */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/**
 * MemoryRoomLog: the embedded RoomLog. Per room it keeps seq, epoch, a window of recent messages
 * (newest `windowSize`, younger than `windowMs`) and the idempotency ids of the last `idemMs`
 * (at most `idemMax`, first message kept).
 *
 * A room's state is created on first use: from `seed` if given (awaited once per room, however many
 * calls arrive meanwhile; a failed seed is retried by the next call), else at seq 0 with a new epoch.
 * Once a room's state exists every operation on it is synchronous, so appends are atomic and their
 * seqs gap-free, in call order.
 *
 * To bound memory, the sweep evicts rooms whose window and idempotency map are empty and that were
 * idle for max(windowMs, idemMs), but only when `seed` is set, so a later use continues from it (the
 * seed must then know every seq this log handed out, as the MessageStore does in embedded mode once
 * the DurableLog has committed them). Without `seed` room state is kept for the life of the log.
 */
export class MemoryRoomLog implements RoomLog {
  readonly kind = 'memory';
  private readonly options: MemoryRoomLogOptions;
  private readonly now: () => number;
  private readonly rooms = new Map<string, RoomState>();
  private readonly loading = new Map<string, Promise<RoomState>>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(options: Partial<MemoryRoomLogOptions> = {}, now: () => number = Date.now) {
    const base = { ...defaultRoomLogOptions, ...options };
    this.options = {
      ...base,
      idemMax: options.idemMax ?? 10 * base.windowSize,
      sweepMs: options.sweepMs ?? 10_000,
    };
    this.now = now;
    this.timer = setInterval(() => this.sweep(), this.options.sweepMs);
    this.timer.unref();
  }

  async append(ref: RoomRef, input: PublishInput): Promise<AppendResult> {
    const state = await this.room(ref);
    this.ensureOpen();
    const now = this.now();
    state.touched = now;
    this.trimIdem(state, now);
    const key = input.idem === undefined ? undefined : `${input.from}\u0000${input.idem}`;
    if (key !== undefined) {
      const seen = state.idem.get(key);
      if (seen !== undefined) return { message: seen.message, duplicate: true };
    }
    if (input.maxPerSecond !== undefined && input.maxPerSecond > 0) {
      const second = Math.floor(now / 1000);
      if (state.rateSecond !== second) {
        state.rateSecond = second;
        state.rateCount = 0;
      }
      if ((state.rateCount ?? 0) >= input.maxPerSecond)
        throw new EngineError('roomlog', 'full', `room ${ref.room} accepts ${input.maxPerSecond} publishes a second; retry later`);
      state.rateCount = (state.rateCount ?? 0) + 1;
    }
    state.seq += 1;
    const message: RoomMessage = {
      tenant: ref.tenant,
      room: ref.room,
      seq: state.seq,
      epoch: state.epoch,
      from: input.from,
      ts: now,
      ...(input.event !== undefined ? { event: input.event } : {}),
      ...(input.key !== undefined ? { key: input.key } : {}),
      data: input.data,
      ...(input.idem !== undefined ? { idem: input.idem } : {}),
    };
    state.window.push(message);
    this.trimWindow(state, now);
    if (key !== undefined) {
      state.idem.set(key, { message, at: now });
      this.trimIdem(state, now);
    }
    return { message, duplicate: false };
  }

  async since(ref: RoomRef, seq: number, epoch: string): Promise<RecoveryResult> {
    const state = await this.readable(ref);
    const position = { seq: state.seq, epoch: state.epoch };
    const messages = state.window.filter((m) => m.seq > seq);
    if (epoch !== state.epoch) return { messages, position, complete: false };
    if (seq >= state.seq) return { messages: [], position, complete: true };
    const first = state.window[0];
    const complete = first !== undefined && first.seq <= seq + 1;
    return { messages, position, complete };
  }

  async range(ref: RoomRef, from: number, to: number): Promise<RoomMessage[]> {
    const state = await this.readable(ref);
    return state.window.filter((m) => m.seq >= from && m.seq <= to);
  }

  async position(ref: RoomRef): Promise<RoomPosition> {
    const state = await this.readable(ref);
    return { seq: state.seq, epoch: state.epoch };
  }

  /** In-process: healthy until closed. */
  health(): { ok: boolean; detail?: string } {
    return this.closed ? { ok: false, detail: 'closed' } : { ok: true };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
  }

  /** Trims every room's window and idempotency map by age and evicts idle rooms (see class doc). */
  sweep(): void {
    const now = this.now();
    const idleMs = Math.max(this.options.windowMs, this.options.idemMs);
    for (const [key, state] of this.rooms) {
      this.trimWindow(state, now);
      this.trimIdem(state, now);
      const evictable = state.window.length === 0 && state.idem.size === 0 && now - state.touched > idleMs;
      if (evictable && this.options.seed !== undefined) this.rooms.delete(key);
    }
  }

  /** Number of rooms held in memory (for metrics and tests). */
  size(): number {
    return this.rooms.size;
  }

  private ensureOpen(): void {
    if (this.closed) throw new EngineError('roomlog', 'closed', 'room log is closed');
  }

  /** The room's state, with its window trimmed by age, for a read. */
  private async readable(ref: RoomRef): Promise<RoomState> {
    const state = await this.room(ref);
    const now = this.now();
    state.touched = now;
    this.trimWindow(state, now);
    return state;
  }

  /** The room's state, created (and seeded) once however many callers ask at the same time. */
  private room(ref: RoomRef): Promise<RoomState> | RoomState {
    this.ensureOpen();
    const key = roomKey(ref);
    const existing = this.rooms.get(key);
    if (existing !== undefined) return existing;
    const pending = this.loading.get(key);
    if (pending !== undefined) return pending;
    const seed = this.options.seed;
    if (seed === undefined) return this.create(key, null);
    const load = (async () => {
      try {
        const position = await seed(ref);
        const recent = position !== null && this.options.seedRecent !== undefined ? await this.options.seedRecent(ref) : [];
        const state = this.create(key, position);
        this.restore(state, recent);
        return state;
      } finally {
        this.loading.delete(key);
      }
    })();
    this.loading.set(key, load);
    return load;
  }

  private create(key: string, position: RoomPosition | null): RoomState {
    const state: RoomState = {
      seq: position?.seq ?? 0,
      epoch: position?.epoch ?? newEpoch(),
      window: [],
      idem: new Map(),
      touched: this.now(),
    };
    this.rooms.set(key, state);
    return state;
  }

  /** Refills window and idempotency records from stored messages: the contiguous run ending at `seq`. */
  private restore(state: RoomState, recent: readonly RoomMessage[]): void {
    const run: RoomMessage[] = [];
    let expect = state.seq;
    for (let i = recent.length - 1; i >= 0; i--) {
      const m = recent[i]!;
      if (m.epoch !== state.epoch || m.seq !== expect) break;
      run.unshift(m);
      expect--;
    }
    if (run.length === 0) return;
    state.window.push(...run);
    const now = this.now();
    for (const m of run) {
      if (m.idem !== undefined && now - m.ts < this.options.idemMs) state.idem.set(`${m.from}\u0000${m.idem}`, { message: m, at: m.ts });
    }
    this.trimWindow(state, now);
  }

  private trimWindow(state: RoomState, now: number): void {
    const { windowSize, windowMs } = this.options;
    let drop = Math.max(0, state.window.length - windowSize);
    while (drop < state.window.length && now - (state.window[drop]?.ts ?? now) > windowMs) drop += 1;
    if (drop > 0) state.window.splice(0, drop);
  }

  private trimIdem(state: RoomState, now: number): void {
    for (const [key, entry] of state.idem) {
      if (state.idem.size <= this.options.idemMax && now - entry.at <= this.options.idemMs) break;
      state.idem.delete(key);
    }
  }
}
