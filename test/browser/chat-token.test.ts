/**
 * The chat page on a node that requires JWTs (no --dev), in real headless Chromium: the token given in
 * `#token=` decides who the user is. The join form asks for the room only; the page shows and marks the
 * token's subject as "you" (its own messages and its presence entry), and another user's messages are
 * not marked as its own.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { JWT_SECRET, token } from '../helpers/tokens.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);

describe.skipIf(!HAVE_CHROMIUM)('the chat page with a JWT', () => {
  let node: NodeProcess;
  let browser: Browser;

  beforeAll(async () => {
    node = await startNodeProcess({ dev: false, args: ['--jwt-secret', JWT_SECRET] });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-gpu'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await node?.stop();
  });

  async function open(sub: string): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error(`page error (${sub}):`, err.message));
    await page.goto(`${node.url}/#token=${await token(sub)}`);
    expect(await page.locator('input[name=name]').count()).toBe(0); // the token names the user
    expect(await page.locator('.signed-in').textContent()).toMatch(/token/);
    await page.fill('input[name=room]', 'jwt-room');
    await page.click('form.join button[type=submit]');
    await page.waitForSelector('.pill[data-state=connected]', { timeout: 20_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}; the page says: ${(await page.locator('body').innerText()).slice(0, 500)}`);
    });
    return page;
  }

  it("asks for the room only and marks the token's subject as the user", async () => {
    const ada = await open('ada-7f3');
    const bob = await open('bob-91c');
    await expect.poll(() => ada.locator('header .me').textContent(), { timeout: 10_000 }).toBe('as ada-7f3');
    await expect.poll(() => bob.locator('header .me').textContent(), { timeout: 10_000 }).toBe('as bob-91c');

    await ada.fill('input[name=text]', 'hello from ada');
    await ada.press('input[name=text]', 'Enter');
    await expect.poll(() => bob.locator('li.msg').count(), { timeout: 15_000 }).toBe(1); // seq 1 is ada's
    await bob.fill('input[name=text]', 'hello from bob');
    await bob.press('input[name=text]', 'Enter');

    const rows = async (page: Page): Promise<{ from: string; own: boolean }[]> =>
      page.locator('li.msg').evaluateAll((els) => els.map((el) => ({ from: el.querySelector('.from')?.textContent ?? '', own: el.classList.contains('own') })));
    const expected = (me: string) => [
      { from: 'ada-7f3', own: me === 'ada-7f3' },
      { from: 'bob-91c', own: me === 'bob-91c' },
    ];
    await expect.poll(() => rows(ada), { timeout: 15_000 }).toEqual(expected('ada-7f3'));
    await expect.poll(() => rows(bob), { timeout: 15_000 }).toEqual(expected('bob-91c'));

    await expect.poll(() => bob.locator('.presence li[data-user="bob-91c"] .user').textContent(), { timeout: 10_000 }).toBe('bob-91c (you)');
    await expect.poll(() => bob.locator('.presence li[data-user="ada-7f3"] .user').textContent(), { timeout: 10_000 }).toBe('ada-7f3');
  }, 60_000);
});
