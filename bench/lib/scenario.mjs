/**
 * Running one scenario (or one variant inside a scenario) as the owner of every process it starts: when it
 * ends, by returning or by throwing, whatever it left running is stopped by pid, and a failure is recorded
 * in the run's result (`failed`, `errors`) with the processes that had to be stopped, so a figure is never
 * read from a run where an earlier scenario's load was still running.
 */
import { log, owned } from './procs.mjs';

const describe = (stopped) => stopped.map((p) => `${p.name} (pid ${p.pid})`).join(', ');
/** An error as one line (a child's output inside it may span several). */
const message = (err) =>
  String(err?.message ?? err)
    .replace(/\s+/g, ' ')
    .trim();

/**
 * Runs variant `key` of a scenario that goes on when one variant fails: `out[key]` is its figures, or null
 * with `{ variant, error, stopped }` pushed onto `out.failed` (reported by runScenario).
 */
export async function runVariant(out, key, name, fn) {
  const r = await owned(name, fn);
  out[key] = r.ok ? r.value : null;
  if (!r.ok) {
    log(`${name} FAILED: ${r.error?.stack ?? r.error}`);
    (out.failed ??= []).push({ variant: name, error: message(r.error), stopped: r.stopped });
  }
  if (r.stopped.length > 0) log(`${name}: stopped ${r.stopped.length} process(es) left running: ${describe(r.stopped)}`);
  return out[key];
}

/**
 * Runs scenario `name` and returns its figures, or null when it failed. `result` gets
 * `failed: [{ scenario, error, stopped }]` (a failed variant counts) and a line in `errors`; a scenario that
 * succeeded but left processes running gets a line in `warnings`.
 */
export async function runScenario(result, name, fn) {
  log(`── ${name}`);
  const r = await owned(name, fn);
  result.failed ??= [];
  result.warnings ??= [];
  const stoppedText =
    r.stopped.length > 0 ? `; stopped ${r.stopped.length} process(es) it left running: ${describe(r.stopped)}` : '; every process it started had stopped';
  if (!r.ok) {
    log(`${name} FAILED: ${r.error?.stack ?? r.error}`);
    result.failed.push({ scenario: name, error: message(r.error), stopped: r.stopped });
    result.errors.push(`${name} FAILED: ${message(r.error)}${stoppedText}`);
    return null;
  }
  for (const f of r.value?.failed ?? []) {
    result.failed.push({ scenario: name, ...f });
    result.errors.push(
      `${f.variant} FAILED: ${f.error}${f.stopped.length > 0 ? `; stopped ${f.stopped.length} process(es) it left running: ${describe(f.stopped)}` : ''}`,
    );
  }
  if (r.stopped.length > 0) {
    log(`${name}: stopped ${r.stopped.length} process(es) it left running: ${describe(r.stopped)}`);
    result.warnings.push(`${name} left ${r.stopped.length} process(es) running, stopped at its end: ${describe(r.stopped)}`);
  }
  return r.value;
}
