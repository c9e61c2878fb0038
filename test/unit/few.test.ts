import { describe, expect, it } from 'vitest';
import { fewAdd, fewDelete, fewEach, fewHas, fewList, fewSize, type Few } from '../../src/util/few.js';

describe('Few (a set stored without a Set until it has two elements)', () => {
  it('grows from empty to one element to a Set, and shrinks back to the element and to empty', () => {
    let f: Few<string> = null;
    expect(fewSize(f)).toBe(0);
    f = fewAdd(f, 'a');
    expect(f).toBe('a');
    expect(fewAdd(f, 'a')).toBe('a');
    f = fewAdd(f, 'b');
    expect(f).toBeInstanceOf(Set);
    f = fewAdd(f, 'c');
    expect(fewSize(f)).toBe(3);
    expect(fewList(f).sort()).toEqual(['a', 'b', 'c']);
    expect(fewHas(f, 'b')).toBe(true);
    f = fewDelete(f, 'b');
    f = fewDelete(f, 'c');
    expect(f).toBe('a');
    expect(fewDelete(f, 'zz')).toBe('a');
    f = fewDelete(f, 'a');
    expect(f).toBeNull();
    expect(fewHas(f, 'a')).toBe(false);
    expect(fewList(undefined)).toEqual([]);
  });

  it('works for objects by identity, and the list is a copy safe to iterate while deleting', () => {
    const x = { n: 1 };
    const y = { n: 1 };
    let f: Few<{ n: number }> = fewAdd(fewAdd(null, x), y);
    expect(fewSize(f)).toBe(2);
    for (const v of fewList(f)) f = fewDelete(f, v);
    expect(f).toBeNull();
  });

  it('fewEach visits every element once, in every shape', () => {
    const seen = (f: Few<string> | undefined): string[] => {
      const out: string[] = [];
      fewEach(f, (v) => out.push(v));
      return out.sort();
    };
    expect(seen(undefined)).toEqual([]);
    expect(seen(null)).toEqual([]);
    expect(seen('a')).toEqual(['a']);
    expect(seen(fewAdd(fewAdd('a', 'b'), 'c'))).toEqual(['a', 'b', 'c']);
  });
});
