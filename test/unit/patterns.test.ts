/** compilePatterns: exact names, `*` globs, the catch-all `*`, regex metacharacters taken literally. */
import { describe, expect, it } from 'vitest';
import { compilePatterns } from '../../src/auth/patterns.js';

describe('compilePatterns', () => {
  it('matches exact names only exactly', () => {
    const m = compilePatterns(['lobby', 'team-a']);
    expect(m('lobby')).toBe(true);
    expect(m('team-a')).toBe(true);
    expect(m('lobby2')).toBe(false);
    expect(m('xlobby')).toBe(false);
    expect(m('Lobby')).toBe(false);
    expect(m('team-ab')).toBe(false);
    expect(m('')).toBe(false);
  });

  it('matches a prefix glob: `*` is any run of characters, including none', () => {
    const m = compilePatterns(['team-*']);
    expect(m('team-a')).toBe(true);
    expect(m('team-alpha:ops@x~1')).toBe(true);
    expect(m('team-')).toBe(true);
    expect(m('team')).toBe(false);
    expect(m('my-team-a')).toBe(false);
    expect(m('TEAM-a')).toBe(false);
  });

  it('matches suffix and infix globs, anchored at both ends', () => {
    const suffix = compilePatterns(['*-admin']);
    expect(suffix('ops-admin')).toBe(true);
    expect(suffix('-admin')).toBe(true);
    expect(suffix('ops-admin2')).toBe(false);
    const infix = compilePatterns(['a*b*c']);
    expect(infix('abc')).toBe(true);
    expect(infix('a-x-b-y-c')).toBe(true);
    expect(infix('a-x-c')).toBe(false);
    expect(infix('xabc')).toBe(false);
    expect(infix('abcx')).toBe(false);
  });

  it('combines exact names and globs', () => {
    const m = compilePatterns(['lobby', 'dm:alice:*', '*:public']);
    expect(m('lobby')).toBe(true);
    expect(m('dm:alice:bob')).toBe(true);
    expect(m('news:public')).toBe(true);
    expect(m('dm:bob:alice')).toBe(false);
    expect(m('news:private')).toBe(false);
  });

  it('`*` alone allows every room, also when mixed with other patterns', () => {
    for (const m of [compilePatterns(['*']), compilePatterns(['lobby', '*'])]) {
      expect(m('lobby')).toBe(true);
      expect(m('anything-at:all@~')).toBe(true);
      expect(m('')).toBe(true);
    }
  });

  it('treats regular-expression metacharacters in names literally', () => {
    const cases: Array<[string, string[], string[]]> = [
      ['a.b', ['a.b'], ['axb', 'a-b']],
      ['a.b*', ['a.b', 'a.bcd'], ['axb', 'axbcd']],
      ['a+', ['a+'], ['a', 'aa']],
      ['a+*', ['a+', 'a+x'], ['a', 'aa', 'aax']],
      ['(x)', ['(x)'], ['x']],
      ['(x)*', ['(x)y'], ['x', 'xy']],
      ['[ab]', ['[ab]'], ['a', 'b']],
      ['[ab]*', ['[ab]c'], ['a', 'ac']],
      ['a|b', ['a|b'], ['a', 'b']],
      ['a|b*', ['a|bc'], ['a', 'bc']],
      ['^x$', ['^x$'], ['x']],
      ['^x$*', ['^x$y'], ['x', 'xy']],
      ['a?', ['a?'], ['a', '']],
      ['a{2}*', ['a{2}'], ['aa', 'aax']],
      ['\\d*', ['\\d1'], ['1', '11']],
      ['$*', ['$x'], ['x']],
    ];
    for (const [pattern, yes, no] of cases) {
      const m = compilePatterns([pattern]);
      for (const room of yes) expect(m(room), `${pattern} should match ${room}`).toBe(true);
      for (const room of no) expect(m(room), `${pattern} should not match ${room}`).toBe(false);
    }
  });

  it('an empty list allows nothing', () => {
    const m = compilePatterns([]);
    for (const room of ['lobby', '*', '', 'a', 'team-a']) expect(m(room)).toBe(false);
  });
});
