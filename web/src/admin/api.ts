/** Calls the admin API with the API key the operator typed (kept for this tab only, in sessionStorage). */
import type { ClusterView } from '../../../src/http/admin-types.js';

export type { ClusterView };
const KEY = 'switchboard.apiKey';

export class Unauthorized extends Error {}

export function savedKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function saveKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, key);
}

export async function fetchCluster(key: string | null): Promise<ClusterView> {
  const res = await fetch('/api/admin/cluster', { headers: key !== null ? { authorization: `Bearer ${key}` } : {}, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized((await res.json().catch(() => null))?.error?.message ?? 'unauthorized');
  if (!res.ok) throw new Error(`admin API answered ${res.status}`);
  return (await res.json()) as ClusterView;
}
