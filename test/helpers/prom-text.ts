/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests. It throws on anything a
 * Prometheus server would refuse or that is suspicious: a malformed line, a bad metric or label name, a bad
 * escape, an unparsable value, a sample of a family without # TYPE before it, a family declared twice, a
 * duplicate series, and histograms whose buckets are not cumulative or whose +Inf bucket differs from
 * _count. (The one npm parser of this format, parse-prometheus-text-format, has build tooling from 2019,
 * ships no types and does not check histograms, so the test keeps its own.)
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count', ''],
  counter: [''],
  gauge: [''],
  untyped: [''],
};

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const series = new Set<string>();
  let current: Family | null = null;
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') throw new Error('exposition must end with a newline');
  lines.pop();
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`bad metric name: ${where}`);
      let fam = families.get(name);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`bad type: ${where}`);
        if (fam !== undefined && fam.samples.length > 0) throw new Error(`TYPE after samples: ${where}`);
        if (fam !== undefined && fam.type !== 'untyped') throw new Error(`family declared twice: ${where}`);
        fam ??= { name, type: 'untyped', help: '', samples: [] };
        fam.type = rest as Family['type'];
      } else {
        fam ??= { name, type: 'untyped', help: '', samples: [] };
        fam.help = unescape(rest, false, where);
      }
      families.set(name, fam);
      current = fam;
      return;
    }
    if (line.trim() === '') return;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (m === null) throw new Error(`malformed sample: ${where}`);
    const [, name, , labelText, valueText] = m as unknown as [string, string, string | undefined, string | undefined, string];
    const labels = labelText === undefined ? {} : parseLabels(labelText, where);
    const value = parseValue(valueText, where);
    const fam: Family | null = current;
    if (fam === null || !SUFFIXES[fam.type]!.some((s) => name === fam.name + s)) throw new Error(`sample without its # TYPE family before it: ${where}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`duplicate series: ${where}`);
    series.add(key);
    fam.samples.push({ name, labels, value });
  });
  for (const fam of families.values()) if (fam.type === 'histogram') checkHistogram(fam);
  return families;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest !== '') {
    const m = /^([^=]+)="((?:[^"\\]|\\.)*)"(,|$)/.exec(rest);
    if (m === null) throw new Error(`malformed labels: ${where}`);
    const [all, name, raw] = m as unknown as [string, string, string];
    if (!LABEL.test(name)) throw new Error(`bad label name ${name}: ${where}`);
    if (name in labels) throw new Error(`label ${name} given twice: ${where}`);
    labels[name] = unescape(raw, true, where);
    rest = rest.slice(all.length);
  }
  return labels;
}

function unescape(s: string, quoted: boolean, where: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => {
    if (c === 'n') return '\n';
    if (c === '\\') return '\\';
    if (c === '"' && quoted) return '"';
    throw new Error(`bad escape \\${c}: ${where}`);
  });
}

function parseValue(v: string, where: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN' || v === 'Nan') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) throw new Error(`bad value ${v}: ${where}`);
  return Number(v);
}

function checkHistogram(fam: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of fam.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${s.name} without le`);
      g.buckets.push([parseValue(le, `${s.name} le`), s.value]);
    } else if (s.name.endsWith('_count')) g.count = s.value;
    else g.sum = s.value;
  }
  for (const [key, g] of groups) {
    const at = `${fam.name}${key}`;
    if (g.count === undefined || g.sum === undefined) throw new Error(`histogram ${at} lacks _count or _sum`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new Error(`histogram ${at}: le not increasing`);
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new Error(`histogram ${at}: buckets not cumulative`);
    }
    const last = g.buckets[g.buckets.length - 1];
    if (last === undefined || last[0] !== Infinity) throw new Error(`histogram ${at} has no +Inf bucket`);
    if (last[1] !== g.count) throw new Error(`histogram ${at}: +Inf bucket ${last[1]} != _count ${g.count}`);
  }
}

/** Every series name a scrape exposes (histograms as name_bucket/_sum/_count, as PromQL sees them). */
export function seriesNames(families: Map<string, Family>): Set<string> {
  const names = new Set<string>();
  for (const f of families.values()) {
    for (const suffix of SUFFIXES[f.type]!) names.add(f.name + suffix);
  }
  return names;
}
