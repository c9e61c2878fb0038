/**
 * The harness's own counting, kept free of I/O so tests can check it: the one `percentiles` of the bench,
 * per-member sequence tracking (loss, duplicates, reordering) and delivery totals (in window, late, lost)
 * against what was published.
 */

/** Nearest-rank percentiles (p in 0..100) of a list of numbers; nulls when the list is empty. */
export function percentiles(values, ps = [50, 99]) {
  const out = {};
  if (values.length === 0) {
    for (const p of ps) out[`p${p}`] = null;
    out.max = null;
    out.n = 0;
    return out;
  }
  const a = Float64Array.from(values).sort();
  for (const p of ps) out[`p${p}`] = a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
  out.max = a[a.length - 1];
  out.n = a.length;
  return out;
}

/**
 * Tracks the seqs one member received. `expectFirst` (optional) is the first seq it should see.
 * After all messages, `missing(lastExpected)` counts seqs never received.
 */
export class SeqTracker {
  constructor(expectFirst) {
    this.expectFirst = expectFirst;
    this.seen = new Set();
    this.received = 0;
    this.dups = 0;
    this.outOfOrder = 0;
    this.last = -Infinity;
  }

  add(seq) {
    this.received++;
    if (this.seen.has(seq)) {
      this.dups++;
      return;
    }
    if (seq < this.last) this.outOfOrder++;
    this.seen.add(seq);
    this.last = Math.max(this.last, seq);
  }

  /** Seqs in [expectFirst, lastExpected] never received. */
  missing(lastExpected) {
    let n = 0;
    for (let s = this.expectFirst ?? 1; s <= lastExpected; s++) if (!this.seen.has(s)) n++;
    return n;
  }

  summary(lastExpected) {
    return {
      received: this.received,
      unique: this.seen.size,
      dups: this.dups,
      outOfOrder: this.outOfOrder,
      missing: lastExpected === undefined ? null : this.missing(lastExpected),
    };
  }
}

/**
 * Sums per-process delivery counters after a window and its drain, against `published` × `members`:
 * `inWindow` arrived inside the window, `late` after it (still on their way when the window closed),
 * `lost` never arrived (what members still lacked when deliveries had settled, counted per member when the
 * processes report `short`), `extra` beyond what each member should have (duplicates).
 */
export function deliveryTotals(parts, published, members) {
  const sum = (k) => parts.reduce((s, p) => s + (p[k] ?? 0), 0);
  const delivered = sum('total');
  const inWindow = sum('inWindow');
  const expected = published * members;
  const perMember = parts.every((p) => p.short !== undefined);
  return {
    delivered,
    expected,
    inWindow,
    late: Math.max(0, delivered - inWindow),
    lost: perMember ? sum('short') : Math.max(0, expected - delivered),
    extra: perMember ? sum('over') : Math.max(0, delivered - expected),
  };
}

/** Rounds for tables. */
export const round = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d);
export const ratio = (a, b) => (a == null || b == null || b === 0 ? null : round(a / b, 2));

/**
 * Cheap order checks for many members at once (no per-message allocation): per member the highest seq
 * seen; a seq equal to or below it is a duplicate or reordering, a jump over `last + 1` a gap (its size is
 * added to `gapSeqs`). A member's first seq is not a gap (it joined at some point of the stream).
 */
export class MemberSeqs {
  constructor(n) {
    this.last = new Float64Array(n);
    this.reset();
  }

  reset() {
    this.last.fill(-1);
    this.dupsOrReordered = 0;
    this.gaps = 0;
    this.gapSeqs = 0;
  }

  add(i, seq) {
    const last = this.last[i];
    if (last < 0) {
      this.last[i] = seq;
      return;
    }
    if (seq <= last) this.dupsOrReordered++;
    else {
      if (seq !== last + 1) {
        this.gaps++;
        this.gapSeqs += seq - last - 1;
      }
      this.last[i] = seq;
    }
  }

  summary() {
    return { dupsOrReordered: this.dupsOrReordered, gaps: this.gaps, gapSeqs: this.gapSeqs };
  }
}
