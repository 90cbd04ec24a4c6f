// Relative times ("just now", "3 min ago") in a real browser whose clock is not the server's:
// a page counts a time's age from what the server measured, so a skewed clock on the
// browser's machine neither ages a new task nor makes it look newer, and times keep moving.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { launchBrowser, startServer } from '../lib/harness.mjs';

const TIMEOUT = 20_000;
/** How far the browser's clock runs ahead of the server's. */
const SKEW_MS = 12_000;

/** The text of the created time of task `id` in the list, once app.js has looked at it. */
async function createdText(page, id) {
  const time = page.locator(`#tasks-rows tr:has(a[href="/ui/tasks/${id}"]) time[data-relative]`);
  await page.waitForFunction((element) => element.dataset.local === 'true', await time.elementHandle(), { timeout: TIMEOUT });
  return time.textContent();
}

/**
 * Opens the task list and waits until the refresh its live stream asks for on connect has
 * landed: that refresh renders the rows again, and a row rendered after the test moves the
 * browser's clock would rightly start counting from then.
 */
async function openSettledList(page, url) {
  await page.addInitScript(() => {
    document.addEventListener('htmx:afterSettle', (event) => {
      if (event.target.id === 'tasks-rows') {
        window.blanketRowsRefreshed = true;
      }
    });
  });
  await page.goto(url);
  await page.waitForFunction(() => window.blanketRowsRefreshed === true, null, { timeout: TIMEOUT });
}

describe('relative times', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ workers: 0 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('call a task just submitted "just now" on a browser whose clock is ahead', async () => {
    const context = await browser.newContext();
    await context.clock.install({ time: Date.now() + SKEW_MS });
    const page = await context.newPage();
    const task = await server.api('POST', '/task/', { type: 'echo_task' });

    await page.goto(`${server.url}/ui/`);

    assert.equal(await createdText(page, task.id), 'just now');
    await context.close();
  });

  it('age a shown time by the time that passes in the browser', async () => {
    const context = await browser.newContext();
    await context.clock.install({ time: Date.now() - SKEW_MS });
    const page = await context.newPage();
    const task = await server.api('POST', '/task/', { type: 'echo_task' });
    await openSettledList(page, `${server.url}/ui/`);
    assert.equal(await createdText(page, task.id), 'just now');

    // Past the page's next refresh of its times: the text follows the 20 s the browser saw go by.
    await page.clock.fastForward(20_000);

    const time = page.locator(`#tasks-rows tr:has(a[href="/ui/tasks/${task.id}"]) time[data-relative]`);
    assert.match(await time.textContent(), /^2[01] s ago$/);
    await context.close();
  });
});
