/**
 * Reads the packaging files (Dockerfile, deploy/compose.yaml, deploy/k8s/*.yaml) for the tests that check
 * them without a Docker engine or a Kubernetes cluster: the Dockerfile's instructions per stage, the YAML
 * documents, and the gateway environments each file gives the CLI.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const root = (...parts: string[]): string => join(ROOT, ...parts);

export interface Instruction {
  op: string;
  args: string;
}
export interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** The Dockerfile as stages of instructions (continuation lines joined, comments dropped). */
export function dockerfileStages(text = readFileSync(root('Dockerfile'), 'utf8')): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\S+)\s+(.*)$/.exec(l);
    if (m === null) continue;
    const op = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ from: f?.[1] ?? args, ...(f?.[2] !== undefined ? { name: f[2] } : {}), instructions: [] });
    } else if (stages.length > 0) stages[stages.length - 1]!.instructions.push({ op, args });
  }
  return stages;
}

/** The JSON (exec-form) array of an instruction such as `ENTRYPOINT ["node", …]`, or of `HEALTHCHECK … CMD [...]`. */
export function execForm(args: string): string[] {
  const start = args.indexOf('[');
  const value: unknown = JSON.parse(args.slice(start));
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return value;
}

/** `ENV A=1 B=2` (and the legacy `ENV A 1`) of a stage, in order. */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.instructions.filter((x) => x.op === 'ENV')) {
    if (!i.args.includes('=')) {
      const [k, ...v] = i.args.split(/\s+/);
      env[k!] = v.join(' ');
      continue;
    }
    for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S+)/g))
      env[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  }
  return env;
}

export function readYaml(path: string): unknown {
  return parseYaml(readFileSync(path, 'utf8'), { merge: true });
}

/** Every document of every manifest file in deploy/k8s (kustomization.yaml apart). */
export function k8sManifests(): { file: string; doc: Record<string, unknown> }[] {
  const dir = root('deploy', 'k8s');
  const out: { file: string; doc: Record<string, unknown> }[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const d of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      const doc: unknown = d.toJS();
      if (typeof doc !== 'object' || doc === null) throw new Error(`${file}: a document is not an object`);
      out.push({ file, doc: doc as Record<string, unknown> });
    }
  }
  return out;
}

/** The gateway environment of the Kubernetes manifests: the ConfigMap's data and the Secret's stringData. */
export function k8sGatewayEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { doc } of k8sManifests()) {
    if (doc.kind === 'ConfigMap') Object.assign(env, doc.data as Record<string, string>);
    if (doc.kind === 'Secret') Object.assign(env, doc.stringData as Record<string, string>);
  }
  return env;
}
