/** Maximum nesting of a client frame or HTTP body (objects and arrays), checked before schema validation:
 * recursive validation of deeper values could exhaust the stack, and the history store refuses them. */
export const MAX_JSON_DEPTH = 64;

/** True when `value` nests objects/arrays deeper than `max` levels. Iterative: safe on any input. */
export function exceedsDepth(value: unknown, max: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (item.value === null || typeof item.value !== 'object') continue;
    if (item.depth + 1 > max) return true;
    const children = Array.isArray(item.value) ? item.value : Object.values(item.value as Record<string, unknown>);
    for (const child of children) stack.push({ value: child, depth: item.depth + 1 });
  }
  return false;
}
