/**
 * Builds the validated Config from (lowest to highest precedence) defaults, a JSON config file,
 * environment variables and command-line flags. Option `fooBar` is flag `--foo-bar` and env
 * `SWITCHBOARD_FOO_BAR`; the URLs also read the conventional NATS_URL, REDIS_URL and DATABASE_URL.
 */
import { readFileSync } from 'node:fs';
import { configSchema, SECRET_KEYS, type Config } from './schema.js';

export const CONFIG_KEYS = Object.keys(configSchema.shape) as (keyof Config)[];

const CONVENTIONAL_ENV: Partial<Record<keyof Config, string>> = {
  nats: 'NATS_URL',
  redis: 'REDIS_URL',
  database: 'DATABASE_URL',
};

export const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const envName = (k: string): string => `SWITCHBOARD_${kebab(k).replace(/-/g, '_').toUpperCase()}`;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env, configFile?: string): Config {
  const fromFile = configFile !== undefined ? readConfigFile(configFile) : {};
  const fromEnv: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const conventional = CONVENTIONAL_ENV[key];
    const value = env[envName(key)] ?? (conventional !== undefined ? env[conventional] : undefined);
    if (value !== undefined && value !== '') fromEnv[key] = value;
  }
  const fromFlags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) if (v !== undefined && (CONFIG_KEYS as string[]).includes(k)) fromFlags[k] = v;
  const parsed = configSchema.safeParse({ ...fromFile, ...fromEnv, ...fromFlags });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.length > 0 ? `--${kebab(String(i.path[0]))}: ` : ''}${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

function readConfigFile(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  const unknownKeys = Object.keys(value).filter((k) => !(CONFIG_KEYS as string[]).includes(k));
  if (unknownKeys.length > 0) throw new ConfigError(`config file ${path}: unknown keys ${unknownKeys.join(', ')}`);
  return value as Record<string, unknown>;
}

/** The config with secrets and URL passwords replaced, for printing at start-up. */
export function redactConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const k of SECRET_KEYS) if (out[k] !== undefined) out[k] = '[redacted]';
  out.pusherApps = config.pusherApps.map((app) => ({ ...app, secret: '[redacted]' }));
  out.webhooks = config.webhooks.map((w) => ({ ...w, secret: '[redacted]' }));
  for (const k of ['nats', 'redis', 'database'] as const) {
    const v = config[k];
    if (v !== undefined) out[k] = v.split(',').map(redactUrl).join(',');
  }
  return out;
}

/** Replaces the password (and password-like query parameters) of a URL; unparsable values are hidden whole. */
function redactUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return '[redacted: unparsable URL]';
  }
  if (url.password !== '') url.password = 'REDACTED';
  for (const key of [...url.searchParams.keys()]) {
    if (/pass|secret|token|key/i.test(key)) url.searchParams.set(key, 'REDACTED');
  }
  return url.toString().replace(/REDACTED/g, '[redacted]');
}
