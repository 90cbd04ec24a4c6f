// Screenshots of every page, in the light and the dark theme and at the desktop window's
// narrowest width, saved as artifacts (target/ui-screenshots) for a person to look at.
// The test fails only when a page does not render or shows a script error.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { artifactsDir, launchBrowser, screenshot, startServer, waitFor } from '../lib/harness.mjs';

const TIMEOUT = 20_000;

async function finished(server, id) {
  return waitFor(`task ${id} to finish`, async () => {
    const task = await server.api('GET', `/task/${id}`);
    return ['SUCCESS', 'ERROR', 'STOPPED', 'TIMEDOUT'].includes(task.state) && task;
  }, TIMEOUT);
}

describe('screenshots of every page', () => {
  let server;
  let browser;
  const shots = [];

  before(async () => {
    server = await startServer({ workers: 2 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (shots.length) {
      console.log(`${shots.length} screenshots in ${artifactsDir}`);
    }
  });

  it('renders every page in light and dark without a script error', async () => {
    const errors = [];
    const pages = [];
    const visit = (name, path, prepare) => pages.push({ name, path, prepare });

    visit('tasks-empty', '/ui/');
    visit('task-types', '/ui/task-types');
    visit('task-type-detail', '/ui/task-types/upload_lines_task');
    visit('task-type-broken', '/ui/task-types/broken_task');
    visit('about', '/ui/about');
    visit('new-task-page', '/ui/tasks/new?type=upload_lines_task');
    visit('new-worker-page', '/ui/workers/new');

    for (const scheme of ['light', 'dark']) {
      const context = await browser.newContext({ colorScheme: scheme, viewport: { width: 1280, height: 860 } });
      context.setDefaultTimeout(TIMEOUT);
      const page = await context.newPage();
      page.on('pageerror', (error) => errors.push(`${scheme}: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') {
          errors.push(`${scheme}: console: ${message.text()}`);
        }
      });
      for (const { name, path } of pages) {
        const response = await page.goto(server.url + path);
        assert.equal(response.status(), 200, `${path} answered ${response.status()}`);
        shots.push(await screenshot(page, `${name}-${scheme}`));
      }
      await context.close();
    }

    // Now fill the lists: finished tasks of every kind, a running one, a queued one.
    const echo = await server.api('POST', '/task/', { type: 'echo_task', environment: { NAME: 'screenshots' } });
    const fail = await server.api('POST', '/task/', { type: 'fail_task' });
    const timeout = await server.api('POST', '/task/', { type: 'timeout_task' });
    await Promise.all([finished(server, echo.id), finished(server, fail.id), finished(server, timeout.id)]);
    const running = await server.api('POST', '/task/', { type: 'sleep_task', environment: { DURATION: '60' } });
    // A task that has written its output and now runs without writing: leaving its page then
    // does not race the server's log watcher (see the report of issue 5).
    const long = await server.api('POST', '/task/', { type: 'quiet_task' });
    const queued = await server.api('POST', '/task/', { type: 'sleep_task', environment: { DURATION: '5' } });
    await waitFor('two running tasks', async () => {
      const tasks = await server.api('GET', '/task/?states=RUNNING');
      return tasks.length === 2 && tasks.every((task) => task.progress > 0 || task.type === 'quiet_task');
    }, TIMEOUT);
    const workers = await server.api('GET', '/worker/');

    const filled = [
      ['tasks', '/ui/'],
      ['tasks-filtered', '/ui/?states=SUCCESS,ERROR,TIMEDOUT'],
      ['task-detail-running', `/ui/tasks/${long.id}`],
      ['task-detail-success', `/ui/tasks/${echo.id}`],
      ['task-detail-error', `/ui/tasks/${fail.id}`],
      ['task-detail-queued', `/ui/tasks/${queued.id}`],
      ['workers', '/ui/workers'],
      ['worker-detail', `/ui/workers/${workers[0].id}`],
    ];
    for (const scheme of ['light', 'dark']) {
      const context = await browser.newContext({ colorScheme: scheme, viewport: { width: 1280, height: 860 } });
      context.setDefaultTimeout(TIMEOUT);
      const page = await context.newPage();
      page.on('pageerror', (error) => errors.push(`${scheme}: ${error.message}`));
      for (const [name, path] of filled) {
        await page.goto(server.url + path);
        await page.waitForTimeout(400);
        if (name === 'task-detail-error') {
          await page.getByRole('tab', { name: /Errors/ }).click();
        }
        shots.push(await screenshot(page, `${name}-${scheme}`));
      }
      await page.goto(`${server.url}/ui/`);
      await page.getByRole('button', { name: 'New', exact: true }).click();
      await page.getByLabel('new task type').selectOption('upload_lines_task');
      await page.locator('input[name="env.GREETEE"]').waitFor();
      shots.push(await screenshot(page, `new-task-panel-${scheme}`));
      await page.getByRole('button', { name: 'launch task' }).click();
      await page.locator('#new-task-error').waitFor();
      shots.push(await screenshot(page, `new-task-error-${scheme}`));
      await page.goto(`${server.url}/ui/workers`);
      await page.getByRole('button', { name: 'New', exact: true }).click();
      await page.getByRole('button', { name: 'launch worker' }).waitFor();
      shots.push(await screenshot(page, `new-worker-panel-${scheme}`));
      await context.close();
    }

    // The desktop window's narrowest width.
    const narrow = await browser.newContext({ viewport: { width: 900, height: 760 } });
    const page = await narrow.newPage();
    for (const [name, path] of [['tasks', '/ui/'], ['task-detail-running', `/ui/tasks/${long.id}`], ['workers', '/ui/workers']]) {
      await page.goto(server.url + path);
      await page.waitForTimeout(300);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${path} is wider than 900 px by ${overflow} px`);
      shots.push(await screenshot(page, `${name}-900px`));
    }
    await narrow.close();
    await server.api('PUT', `/task/${running.id}/cancel`);
    await server.api('PUT', `/task/${long.id}/cancel`);
    assert.deepEqual(errors, []);
  });
});
