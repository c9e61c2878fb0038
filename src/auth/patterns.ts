/**
 * Room patterns in token claims: exact names, or globs where `*` matches any run of characters
 * (e.g. `team-*`, `*`). Compiled once per token.
 */
export type RoomMatcher = (room: string) => boolean;

export function compilePatterns(patterns: readonly string[]): RoomMatcher {
  if (patterns.includes('*')) return () => true;
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const p of patterns) {
    if (!p.includes('*')) exact.add(p);
    else globs.push(new RegExp(`^${p.split('*').map(escapeRegExp).join('.*')}$`));
  }
  if (globs.length === 0) return (room) => exact.has(room);
  return (room) => exact.has(room) || globs.some((g) => g.test(room));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
