/**
 * A set that is usually of one element, stored without a Set until it has two: `null` (empty), the element
 * itself, or a Set of two or more. Per-connection indexes (a user's connections, a connection's rooms) hold
 * one element almost always, and a Set with its hash table costs ~150–200 bytes of heap each, which is a
 * large share of an idle connection's cost. Elements must not themselves be Sets.
 *
 * The functions return the new value to store (the value is replaced, not mutated, when its shape changes).
 */
export type Few<T> = T | Set<T> | null;

export function fewAdd<T>(few: Few<T> | undefined, value: T): Few<T> {
  if (few === null || few === undefined) return value;
  if (few instanceof Set) return few.add(value);
  return few === value ? few : new Set([few, value]);
}

/** Removes `value`; a Set left with one element collapses back to the element. */
export function fewDelete<T>(few: Few<T> | undefined, value: T): Few<T> {
  if (few === null || few === undefined) return null;
  if (!(few instanceof Set)) return few === value ? null : few;
  few.delete(value);
  if (few.size > 1) return few;
  if (few.size === 0) return null;
  return few.values().next().value as T;
}

export function fewHas<T>(few: Few<T> | undefined, value: T): boolean {
  if (few === null || few === undefined) return false;
  return few instanceof Set ? few.has(value) : few === value;
}

export function fewSize<T>(few: Few<T> | undefined): number {
  if (few === null || few === undefined) return 0;
  return few instanceof Set ? few.size : 1;
}

/** Calls `fn` for each element, without copying (for hot paths; `fn` must not change this set). */
export function fewEach<T>(few: Few<T> | undefined, fn: (value: T) => void): void {
  if (few === null || few === undefined) return;
  if (few instanceof Set) for (const v of few) fn(v);
  else fn(few);
}

/** The elements as a fresh array (safe to iterate while the set changes). */
export function fewList<T>(few: Few<T> | undefined): T[] {
  if (few === null || few === undefined) return [];
  return few instanceof Set ? [...few] : [few];
}
