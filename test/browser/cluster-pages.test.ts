/**
 * The chat and admin pages in real headless Chromium (Debian's, driven by playwright-core) against a
 * 2-node cluster of real node processes over real nats-server, redis-server and PostgreSQL:
 * - two browser contexts on the two nodes chat with each other and see each other in presence;
 * - stopping one node shows "reconnecting" on its tab; when it is back, the messages published meanwhile
 *   appear there exactly once (DOM items counted), and the other tab saw the user's lastSeen;
 * - the admin page (API key) lists both nodes and its charts move.
 * Screenshots go to a temp dir, or to $SCREENSHOTS (e.g. docs/img via `npm run screenshots`).
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`browser tests skipped: no Chromium at ${CHROMIUM} (scripts/install-system-deps.sh installs Debian's chromium)`);

const API_KEY = 'browser-test-admin-key-0123456789';
const SHOTS = process.env.SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'sb-shots-'));
mkdirSync(SHOTS, { recursive: true });

const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
let browser: Browser;
let nats: TestServer;
let redis: TestServer;
let pg: TestServer;

function nodeArgs(i: number): string[] {
  return [
    '--node-id',
    `node-${i}`,
    '--nats',
    nats.url,
    '--redis',
    redis.url,
    '--database',
    pg.url,
    '--api-key',
    API_KEY,
    '--presence-ttl-ms',
    '3000',
    '--presence-diff-ms',
    '50',
    '--drain-spread-ms',
    '200',
  ];
}

async function shot(page: Page, name: string, fullPage = false): Promise<string> {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}

async function joinRoom(ctx: BrowserContext, node: NodeProcess, name: string, room: string): Promise<Page> {
  const page = await ctx.newPage();
  page.on('pageerror', (err) => console.error(`page error (${name}):`, err.message));
  await page.goto(`${node.url}/`);
  await page.fill('input[name=name]', name);
  await page.fill('input[name=room]', room);
  await page.click('form.join button[type=submit]');
  await page.waitForSelector('.pill[data-state=connected]', { timeout: 20_000 });
  return page;
}

async function send(page: Page, text: string): Promise<void> {
  await page.fill('input[name=text]', text);
  await page.press('input[name=text]', 'Enter');
}

const texts = (page: Page): Promise<string[]> => page.locator('li.msg .text').allTextContents();

async function waitForTexts(page: Page, expected: string[], timeoutMs = 30_000): Promise<void> {
  await waitFor(async () => JSON.stringify(await texts(page)) === JSON.stringify(expected), timeoutMs, `messages ${JSON.stringify(expected)}`, 100).catch(
    async (err: Error) => {
      throw new Error(`${err.message}; the page shows ${JSON.stringify(await texts(page))}`);
    },
  );
}

describe.skipIf(!HAVE_CHROMIUM)('the pages in Chromium on a 2-node cluster', () => {
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    redis = await startRedisServer();
    pg = await startPostgres();
    servers.push(nats, redis, pg);
    for (const i of [1, 2]) nodes.push(await startNodeProcess({ args: nodeArgs(i) }));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-gpu'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const n of nodes) await n.kill();
    for (const s of servers) await s.dispose();
  });

  it('two tabs on two nodes chat, see each other, and survive a node restart with each missed message once; the admin page shows both nodes and moving charts', async () => {
    const [n1, n2] = [nodes[0]!, nodes[1]!];
    const annCtx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const benCtx = await browser.newContext({ viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true });
    const ann = await joinRoom(annCtx, n1, 'ann', 'lobby');
    const ben = await joinRoom(benCtx, n2, 'ben', 'lobby');

    // Which node each tab is on.
    expect(await ann.locator('.pill.node').textContent()).toBe('node node-1');
    expect(await ben.locator('.pill.node').textContent()).toBe('node node-2');

    // Presence across nodes.
    await ann.waitForSelector('.presence li.online[data-user=ben]', { timeout: 15_000 });
    await ben.click('button.toggle-people'); // phone layout: the people list is behind a button
    await ben.waitForSelector('.presence li.online[data-user=ann]', { timeout: 15_000 });
    expect(await ben.locator('.presence h2').textContent()).toBe('People · 2 online');
    await shot(ben, 'chat-phone-people');
    await ben.click('button.toggle-people');

    // Messages both ways, in one order on both tabs.
    await send(ann, 'Hi Ben, this is node-1 speaking');
    await waitForTexts(ben, ['Hi Ben, this is node-1 speaking']);
    await send(ben, 'Hello Ann! Replying from node-2');
    const both = ['Hi Ben, this is node-1 speaking', 'Hello Ann! Replying from node-2'];
    await waitForTexts(ann, both);
    await waitForTexts(ben, both);
    expect(await ann.locator('li.msg.own .text').allTextContents()).toEqual([both[0]]);
    await shot(ann, 'chat');
    await shot(ben, 'chat-phone');

    // Node 2 goes away: Ben's tab says it is reconnecting; Ann sees Ben offline with a last-seen time.
    await n2.stop();
    await ben.waitForSelector('.banner[data-kind=reconnecting]', { timeout: 20_000 });
    expect(await ben.locator('.banner').textContent()).toMatch(/^Connection lost\. Reconnecting( in \d+ s)?…$/);
    expect(await ben.locator('.pill[data-state]').getAttribute('data-state')).toMatch(/reconnecting|disconnected/);
    await shot(ben, 'chat-phone-reconnecting');
    await ann.waitForSelector('.presence li.offline[data-user=ben]', { timeout: 15_000 });
    expect(await ann.locator('.presence li[data-user=ben] .seen').textContent()).toMatch(/^last seen /);
    await shot(ann, 'chat-last-seen');

    const missed = ['missed one', 'missed two', 'missed three'];
    for (const m of missed) await send(ann, m);
    await waitForTexts(ann, [...both, ...missed]);

    // Node 2 comes back on its port: Ben's tab reconnects and shows each missed message once.
    // The "recovered" banner hides itself after 6 s, so watch for it from before the restart (capturing
    // its text and a screenshot when it shows) rather than after the other waits.
    const recoveredBanner = (async () => {
      // (a string: evaluated in the page; the test's tsconfig has no DOM types)
      const shown = await ben.waitForFunction(
        `(() => { const b = document.querySelector('.banner[data-kind=recovered]'); return b !== null && !b.hidden ? b.textContent : null; })()`,
        undefined,
        { timeout: 90_000, polling: 50 },
      );
      const text = (await shown.jsonValue()) as string | null;
      await shot(ben, 'chat-phone-recovered');
      return text;
    })();
    recoveredBanner.catch(() => undefined); // awaited below; no unhandled rejection if an earlier wait fails
    nodes[1] = await startNodeProcess({ port: n2.port, args: nodeArgs(2) });
    await ben.waitForSelector('.pill[data-state=connected]', { timeout: 60_000 });
    await waitForTexts(ben, [...both, ...missed]);
    expect(await recoveredBanner).toBe('Recovered 3 missed messages.');
    for (const m of missed) expect(await ben.locator('li.msg .text', { hasText: m }).count()).toBe(1);
    await ann.waitForSelector('.presence li.online[data-user=ben]', { timeout: 15_000 });

    // The admin page: asks for the key, then lists both nodes; its charts move with traffic.
    const adminCtx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const admin = await adminCtx.newPage();
    await admin.goto(`${n1.url}/admin`);
    await admin.waitForSelector('form.login input[name=key]');
    await admin.fill('input[name=key]', 'not-the-key-at-all');
    await admin.click('form.login button');
    await admin.waitForSelector('form.login .error:text("That key was refused.")');
    await admin.fill('input[name=key]', API_KEY);
    await admin.click('form.login button');
    await admin.waitForSelector('article.node[data-node=node-1]', { timeout: 15_000 });
    await admin.waitForSelector('article.node[data-node=node-2]', { timeout: 15_000 });
    expect(await admin.locator('article.node').count()).toBe(2);
    await waitFor(
      async () => (await admin.locator('article.node[data-node=node-2] dd').first().textContent()) === '1 / 100000',
      15_000,
      "node-2's one connection",
      200,
    );
    await admin.waitForSelector('table.rooms tr[data-room=lobby]', { timeout: 15_000 });
    await waitFor(
      async () => (await admin.locator('table.rooms tr[data-room=lobby] td').allTextContents()).join('|').startsWith('lobby|default|2|'),
      15_000,
      'lobby with 2 members in the busiest rooms',
      200,
    );

    const chart = admin.locator('figure.chart[data-chart="Messages per second"]');
    const line = chart.locator('polyline[data-label=published]');
    const before = { n: Number(await chart.getAttribute('data-points')), points: await line.getAttribute('points') };
    for (let i = 0; i < 20; i++) await send(ann, `traffic ${i}`);
    // The burst shows as a non-zero rate in one or two points (one per announcement), and the chart keeps moving.
    let sawBurst = false;
    await waitFor(
      async () => {
        if (/published [1-9]/.test((await chart.locator('.now').textContent()) ?? '')) sawBurst = true;
        return sawBurst && Number(await chart.getAttribute('data-points')) >= before.n + 2;
      },
      30_000,
      'the messages chart to show the burst',
      100,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; saw the burst: ${sawBurst}; chart says ${await chart.locator('.now').textContent()}`);
    });
    expect(await line.getAttribute('points')).not.toBe(before.points);
    await admin.waitForSelector('figure.chart[data-chart="Publish → deliver latency"] polyline[data-label=p99][points*=","]', {
      state: 'attached',
      timeout: 15_000,
    });
    await shot(admin, 'admin', true);
    await waitForTexts(ben, [...both, ...missed, ...Array.from({ length: 20 }, (_, i) => `traffic ${i}`)]);
    await Promise.all([annCtx.close(), benCtx.close(), adminCtx.close()]);
  }, 240_000);

  it('a newcomer sees the latest 50 messages and scrolls back through history to the first, in order, each once', async () => {
    const n1 = nodes[0]!;
    for (let i = 1; i <= 75; i++) {
      const res = await fetch(`${n1.url}/api/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify({ room: 'archive', from: 'bot', data: { text: `note ${i}` } }),
      });
      expect(res.status).toBe(200);
    }
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await joinRoom(ctx, nodes[1]!, 'cat', 'archive');
    const note = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `note ${from + i}`);
    await waitForTexts(page, note(26, 75));
    // Scrolling to the top of the list pages back through history (the "Load earlier" button does too).
    await page.locator('ul.messages').evaluate((el) => el.scrollTo({ top: 0 }));
    await waitForTexts(page, note(1, 75));
    expect(await page.locator('button.more').isHidden()).toBe(true);
    expect(await page.locator('li.msg').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))))).toEqual(
      Array.from({ length: 75 }, (_, i) => i + 1),
    );
    await shot(page, 'chat-history');
    await ctx.close();
  }, 120_000);
});
