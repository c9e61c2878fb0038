/**
 * OperationHealth: the `health()` of a MessageStore from the outcome of its operations. Writes and reads are
 * tracked apart, so successful reads do not hide inserts that keep failing; the next success of the same
 * kind clears a failure. After `close()` every operation rejects with EngineError `closed`.
 */
import { EngineError } from '../errors.js';

export type OperationKind = 'write' | 'read';

export class OperationHealth {
  /** The last insert's failure, or the last read's: undefined once one of that kind succeeded. */
  private readonly lastFailure: Record<OperationKind, string | undefined> = { write: undefined, read: undefined };
  private closedFlag = false;

  /** `kind` names the store in errors (the MessageStore's `kind`). */
  constructor(private readonly kind: string) {}

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Marks the store closed; returns false when it already was. */
  close(): boolean {
    if (this.closedFlag) return false;
    this.closedFlag = true;
    return true;
  }

  /** Rejects with EngineError `closed` once closed. */
  assertOpen(): void {
    if (this.closedFlag) throw new EngineError('messagestore', 'closed', `message store (${this.kind}) is closed`);
  }

  /** Runs one operation, recording its outcome. */
  async run<T>(operation: string, kind: OperationKind, fn: () => Promise<T>): Promise<T> {
    this.assertOpen();
    try {
      const result = await fn();
      this.lastFailure[kind] = undefined;
      return result;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.lastFailure[kind] = `${operation} failed at ${new Date().toISOString()}: ${reason}`;
      throw error;
    }
  }

  /** Not ok after close, or while the most recent write or read failed (with the failures in `detail`). */
  health(): { ok: boolean; detail?: string } {
    if (this.closedFlag) return { ok: false, detail: 'closed' };
    const detail = [this.lastFailure.write, this.lastFailure.read].filter((d) => d !== undefined).join('; ');
    return detail === '' ? { ok: true } : { ok: false, detail };
  }
}
