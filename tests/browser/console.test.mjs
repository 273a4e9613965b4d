// The console in headless Chromium against the real orgwall binary and a real database,
// found by role and accessible name only (what a screen reader uses): the tutorial's steps
// 1-4 by clicks, then a real token request and a real read with the credentials the console
// showed; secret rotation, disable, enable, revocation, delete; organizations switched off;
// key rotation; a wrong admin token; hostile names; no other origin, no cookie.
//
//   bash tests/browser/run.sh   (or: ORGWALL_BIN=target/debug/orgwall node --test tests/browser/)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';

import { Orgwall, SCREENSHOTS, launchChromium } from './harness.mjs';

const AUDIENCE = 'https://api.yourapp.com';
const SCOPES = 'read:data write:data delete:data read:users';
const XSS = '<img src=x onerror=alert(1)>';
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let orgwall;
let browser;
/** Every URL any page asked for, in every context. */
const requested = [];
/** Every JavaScript dialog (alert, confirm, prompt) any page opened. */
const jsDialogs = [];
/** Console errors and uncaught exceptions (a CSP or Trusted Types violation shows here). */
const pageErrors = [];
/** What the tutorial flow made, for the tests after it. */
const world = {};

before(async () => {
  orgwall = await Orgwall.start();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await orgwall?.stop();
});

/** A fresh browser context (its own storage, no cookies) watched for requests and dialogs. */
async function open(viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('request', (req) => requested.push(req.url()));
  page.on('dialog', async (dialog) => {
    jsDialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
  await page.goto(`${orgwall.url}/console`);
  return { context, page };
}

async function signIn(page, token = orgwall.adminToken) {
  await page.getByRole('textbox', { name: 'Admin token' }).fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function openSignedIn(viewport) {
  const opened = await open(viewport);
  await signIn(opened.page);
  await opened.page.getByRole('heading', { level: 1, name: 'APIs' }).waitFor();
  return opened;
}

async function go(page, section) {
  await page.getByRole('navigation').getByRole('link', { name: section, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: section, exact: true }).waitFor();
}

/** The table row that mentions `text`. */
const row = (page, text) => page.getByRole('row').filter({ hasText: text });

/** The whole page; with a modal open, what the screen shows (a full-page capture would
 * stretch the viewport under the dialog). */
async function shoot(page, name) {
  const modal = await page.evaluate(() => document.querySelector('dialog[open]') !== null);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: !modal });
}

async function close(context) {
  assert.deepEqual(await context.cookies(), [], 'the console sets no cookie');
  await context.close();
}

/** A state that may take a moment to reach every cache (revocations, client lookups). */
async function eventually(check, what, ms = 8000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`not within ${ms} ms: ${what}`);
}

/** Whether the server has a route yet (another branch may add it): its 404 says which. */
async function hasRoute(method, path) {
  const { status, body } = await orgwall.admin(method, path);
  return !(status === 404 && body?.message === 'No route matches this path');
}

describe('the console', { concurrency: false }, () => {
  test('a wrong admin token is refused with an alert and nothing is stored', async () => {
    const { context, page } = await open();
    await signIn(page, 'not-the-admin-token-at-all');
    await assert.doesNotReject(
      page.getByRole('alert').filter({ hasText: 'Invalid admin token' }).waitFor(),
    );
    assert.equal(await page.getByRole('navigation').count(), 0, 'no navigation while signed out');
    assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
    await close(context);
  });

  test('the tutorial, steps 1-4, by clicks; then a real token request and a real read', async () => {
    const { context, page } = await open();
    const adminCalls = [];
    page.on('request', (req) => {
      if (new URL(req.url()).pathname.startsWith('/admin/')) adminCalls.push(req.headers());
    });
    await signIn(page);
    await page.getByRole('heading', { level: 1, name: 'APIs' }).waitFor();
    // The token lives in this tab's sessionStorage only.
    assert.equal(
      await page.evaluate(() => Object.values(sessionStorage).join()),
      orgwall.adminToken,
    );
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.equal(await page.evaluate(() => document.cookie), '');

    // Step 1-2: register the API with its scopes.
    await page.getByRole('button', { name: 'New API' }).click();
    await page.getByRole('textbox', { name: 'Audience' }).fill(AUDIENCE);
    await page.getByRole('textbox', { name: 'Name' }).fill('Multi-Tenant Data API');
    await page.getByRole('textbox', { name: 'Scopes' }).fill(SCOPES);
    await page.getByRole('button', { name: 'Create API' }).click();
    const apiRow = row(page, AUDIENCE);
    await apiRow.waitFor();
    for (const text of ['Multi-Tenant Data API', ...SCOPES.split(' ')]) {
      await assert.doesNotReject(apiRow.getByText(text, { exact: true }).waitFor(), text);
    }

    // The customers.
    await go(page, 'Organizations');
    for (const [code, name] of [['org_acme', 'Acme Corp'], ['org_beta', 'Beta Inc']]) {
      await page.getByRole('button', { name: 'New organization' }).click();
      await page.getByRole('textbox', { name: 'Code' }).fill(code);
      await page.getByRole('textbox', { name: 'Name' }).fill(name);
      await page.getByRole('button', { name: 'Create organization' }).click();
      await row(page, code).waitFor();
    }
    await row(page, 'org_acme').getByRole('button', { name: 'Disable' }).waitFor();

    // Step 3: an org-scoped M2M app; its secret is shown once.
    await go(page, 'Applications');
    await page.getByRole('button', { name: 'New application' }).click();
    await page.getByRole('textbox', { name: 'Name' }).fill('Acme Data Sync');
    const orgBox = page.getByRole('combobox', { name: 'Organization' });
    await orgBox.getByRole('option', { name: 'Acme Corp (org_acme)' }).waitFor({ state: 'attached' });
    assert.ok(await orgBox.getByRole('option', { name: 'None' }).count(), 'a "None" option');
    await orgBox.selectOption({ label: 'Acme Corp (org_acme)' });
    await page.getByRole('button', { name: 'Create application' }).click();
    const secretBox = page.getByRole('textbox', { name: 'Client secret' });
    await secretBox.waitFor();
    assert.equal(await secretBox.getAttribute('readonly'), '', 'the secret field is read-only');
    const clientId = await page.getByRole('textbox', { name: 'Client ID' }).inputValue();
    const clientSecret = await secretBox.inputValue();
    assert.match(clientId, /\S{8,}/);
    assert.match(clientSecret, /\S{16,}/);
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('dialog').getByRole('status').filter({ hasText: /copied|Ctrl\+C/ }).waitFor();
    await shoot(page, 'flow-desktop-secret-shown-once');
    await page.getByRole('button', { name: 'Done' }).click();
    await secretBox.waitFor({ state: 'hidden' });
    assert.equal(await page.getByText(clientSecret).count(), 0, 'the secret is gone from the page');
    const appRow = row(page, 'Acme Data Sync');
    await appRow.getByText(clientId).waitFor();
    await appRow.getByText('org_acme').waitFor();

    // Step 4: authorize it for the API with two scopes, by checkbox.
    await appRow.getByRole('button', { name: 'Authorize' }).click();
    const authorize = page.getByRole('dialog');
    await authorize.getByRole('combobox', { name: 'API' }).selectOption(AUDIENCE);
    await authorize.getByRole('checkbox', { name: 'read:data', exact: true }).check();
    await authorize.getByRole('checkbox', { name: 'write:data', exact: true }).check();
    assert.equal(await authorize.getByRole('checkbox').count(), 4, 'one checkbox per scope');
    await authorize.getByRole('button', { name: 'Save' }).click();
    await authorize.waitFor({ state: 'hidden' });
    await appRow.getByText('read:data write:data').waitFor();

    // The dashboard's "Test → Get token": a real token, decoded, org_code visible.
    await appRow.getByRole('button', { name: 'Get token' }).click();
    const tester = page.getByRole('dialog');
    await tester.getByRole('combobox', { name: 'API' }).selectOption(AUDIENCE);
    // The page behind the modal is out of reach: one "Get token" button, the dialog's.
    assert.equal(await page.getByRole('button', { name: 'Get token' }).count(), 1);
    await page.getByRole('button', { name: 'Get token' }).click();
    const accessToken = await tester.getByRole('textbox', { name: 'Access token' });
    await accessToken.waitFor();
    const consoleToken = await accessToken.inputValue();
    assert.equal(consoleToken.split('.').length, 3);
    await tester.getByText('"org_code": "org_acme"').waitFor();
    await tester.getByText('"alg": "RS256"').waitFor();
    await tester.getByText('"scope": "read:data write:data"').waitFor();
    await shoot(page, 'flow-desktop-test-token');
    await tester.getByRole('button', { name: 'Close' }).click();
    const consoleRead = await orgwall.read('/orgs/org_acme/data', consoleToken);
    assert.equal(consoleRead.status, 200, JSON.stringify(consoleRead.body));

    // The credentials the console showed work at the real token endpoint and the real API.
    const issued = await orgwall.tokenRequest(clientId, clientSecret, AUDIENCE);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    assert.equal(issued.body.scope, 'read:data write:data');
    const read = await orgwall.read('/orgs/org_acme/data', issued.body.access_token);
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal(read.body.org_code, 'org_acme');
    const other = await orgwall.read('/orgs/org_beta/data', issued.body.access_token);
    assert.equal(other.status, 403, 'and only its own organization');

    // Every admin call carried the bearer token, and nothing else did.
    assert.ok(adminCalls.length >= 8, `${adminCalls.length} admin calls`);
    for (const headers of adminCalls) {
      assert.equal(headers.authorization, `Bearer ${orgwall.adminToken}`);
      assert.equal(headers.cookie, undefined);
    }
    Object.assign(world, { clientId, clientSecret, consoleToken });
    await close(context);
  });

  test('rotate secret: the new secret works at once, the old one does not', async () => {
    assert.ok(world.clientId, 'needs the tutorial flow');
    const { context, page } = await openSignedIn();
    await go(page, 'Applications');
    await row(page, 'Acme Data Sync').getByRole('button', { name: 'Rotate secret' }).click();
    const secretBox = page.getByRole('textbox', { name: 'Client secret' });
    await secretBox.waitFor();
    const newSecret = await secretBox.inputValue();
    assert.notEqual(newSecret, world.clientSecret);
    assert.equal(await page.getByRole('textbox', { name: 'Client ID' }).inputValue(), world.clientId);
    await page.getByRole('button', { name: 'Done' }).click();

    const old = await orgwall.tokenRequest(world.clientId, world.clientSecret, AUDIENCE);
    assert.equal(old.status, 401);
    assert.equal(old.body.error, 'invalid_client');
    const fresh = await orgwall.tokenRequest(world.clientId, newSecret, AUDIENCE);
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    world.clientSecret = newSecret;
    world.accessToken = fresh.body.access_token;
    await close(context);
  });

  test('disable and enable an app', async () => {
    const { context, page } = await openSignedIn();
    await go(page, 'Applications');
    const appRow = row(page, 'Acme Data Sync');
    await appRow.getByRole('button', { name: 'Disable' }).click();
    await appRow.getByText('Disabled', { exact: true }).waitFor();
    const refused = await orgwall.tokenRequest(world.clientId, world.clientSecret, AUDIENCE);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error, 'invalid_client');

    // "Get token" for a disabled app shows the API's answer as an alert, inside the dialog.
    await appRow.getByRole('button', { name: 'Get token' }).click();
    const tester = page.getByRole('dialog');
    await tester.getByRole('combobox', { name: 'API' }).selectOption(AUDIENCE);
    await tester.getByRole('button', { name: 'Get token' }).click();
    await tester.getByRole('alert').filter({ hasText: 'Get token failed' }).waitFor();
    await shoot(page, 'flow-desktop-get-token-refused');
    await tester.getByRole('button', { name: 'Close' }).click();
    assert.equal(await page.getByRole('navigation').count(), 1, 'still signed in');

    await appRow.getByRole('button', { name: 'Enable' }).click();
    await appRow.getByText('Enabled', { exact: true }).waitFor();
    const issued = await eventually(async () => {
      const r = await orgwall.tokenRequest(world.clientId, world.clientSecret, AUDIENCE);
      return r.status === 200 && r;
    }, 'a token after enable');
    world.accessToken = issued.body.access_token;
    await close(context);
  });

  test('revoke tokens: revoked where the server has the route, else its error as an alert', async () => {
    const { context, page } = await openSignedIn();
    await go(page, 'Applications');
    const routeExists = await hasRoute('POST', '/admin/apps/no-such-app/revoke-tokens');
    await new Promise((r) => setTimeout(r, 1100)); // revocation is by the second of iat
    const before = await orgwall.tokenRequest(world.clientId, world.clientSecret, AUDIENCE);
    assert.equal(before.status, 200);
    await row(page, 'Acme Data Sync').getByRole('button', { name: 'Revoke tokens' }).click();
    if (routeExists) {
      await page.getByRole('status').filter({ hasText: 'revoked' }).waitFor();
      await eventually(async () => {
        const r = await orgwall.read('/orgs/org_acme/data', before.body.access_token);
        return r.status === 401;
      }, 'the revoked token rejected');
    } else {
      await page
        .getByRole('alert')
        .filter({ hasText: 'Revoke tokens failed: No route matches this path' })
        .waitFor();
      await shoot(page, 'flow-desktop-revoke-unavailable');
    }
    await close(context);
  });

  test('disable and enable an organization', async () => {
    const { context, page } = await openSignedIn();
    await go(page, 'Organizations');
    const routeExists = await hasRoute('POST', '/admin/orgs/no_such_org/disable');
    const orgRow = row(page, 'org_beta');
    await orgRow.getByRole('button', { name: 'Disable' }).click();
    if (routeExists) {
      await orgRow.getByRole('button', { name: 'Enable' }).waitFor();
      await orgRow.getByText('Disabled', { exact: true }).waitFor();
      await orgRow.getByRole('button', { name: 'Enable' }).click();
      await orgRow.getByRole('button', { name: 'Disable' }).waitFor();
    } else {
      await page
        .getByRole('alert')
        .filter({ hasText: 'Disable failed: No route matches this path' })
        .waitFor();
      await orgRow.getByRole('button', { name: 'Disable' }).waitFor();
      await shoot(page, 'flow-desktop-org-disable-unavailable');
    }
    await close(context);
  });

  test('delete asks to confirm; Cancel keeps the app, Confirm deletes it', async () => {
    const { context, page } = await openSignedIn();
    await go(page, 'Applications');
    const appRow = row(page, 'Acme Data Sync');
    await appRow.getByRole('button', { name: 'Delete' }).click();
    const confirm = page.getByRole('dialog');
    await confirm.getByText('cannot be undone').waitFor();
    await shoot(page, 'flow-desktop-confirm-delete');
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'hidden' });
    assert.equal(await appRow.count(), 1, 'Cancel deletes nothing');
    const still = await orgwall.tokenRequest(world.clientId, world.clientSecret, AUDIENCE);
    assert.equal(still.status, 200);

    await appRow.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await appRow.waitFor({ state: 'detached' });
    const gone = await orgwall.tokenRequest(world.clientId, world.clientSecret, AUDIENCE);
    assert.equal(gone.status, 401);
    assert.equal(gone.body.error, 'invalid_client');
    await close(context);
  });

  test('key rotation: a new signing key, the old one retired', async () => {
    const { context, page } = await openSignedIn();
    await go(page, 'Signing keys');
    const oldKid = JSON.parse(
      Buffer.from(world.consoleToken.split('.')[0], 'base64url').toString(),
    ).kid;
    const table = page.getByRole('table', { name: 'Signing keys' });
    await row(table, oldKid).getByText('signing', { exact: true }).waitFor();
    const rowsBefore = await table.getByRole('row').count();

    await page.getByRole('button', { name: 'Rotate keys' }).click();
    await row(table, oldKid).getByText('retired', { exact: true }).waitFor();
    assert.equal(await table.getByRole('row').count(), rowsBefore + 1, 'one more key');
    const signing = row(table, 'signing').filter({ hasNotText: oldKid });
    assert.equal(await signing.count(), 1, 'one new signing key');
    const { body } = await orgwall.admin('GET', '/admin/keys');
    const newKid = body.keys.find((k) => k.status === 'signing' && k.alg === 'RS256').kid;
    await signing.getByText(newKid).waitFor();
    await close(context);
  });

  test('hostile names are shown as text: no dialog, no element made from them', async () => {
    const before = jsDialogs.length;
    const { context, page } = await openSignedIn();
    await go(page, 'Organizations');
    await page.getByRole('button', { name: 'New organization' }).click();
    await page.getByRole('textbox', { name: 'Code' }).fill('org_xss');
    await page.getByRole('textbox', { name: 'Name' }).fill(XSS);
    await page.getByRole('button', { name: 'Create organization' }).click();
    await row(page, 'org_xss').getByRole('cell', { name: XSS, exact: true }).waitFor();

    await go(page, 'Applications');
    await page.getByRole('button', { name: 'New application' }).click();
    await page.getByRole('textbox', { name: 'Name' }).fill(XSS);
    const orgBox = page.getByRole('combobox', { name: 'Organization' });
    await orgBox.getByRole('option', { name: `${XSS} (org_xss)` }).waitFor({ state: 'attached' });
    await orgBox.selectOption({ label: `${XSS} (org_xss)` });
    await page.getByRole('button', { name: 'Create application' }).click();
    await page.getByRole('button', { name: 'Done' }).click();
    const appRow = row(page, 'org_xss');
    await appRow.getByText(XSS, { exact: true }).waitFor();
    // Into a dialog title and the confirmation text too.
    await appRow.getByRole('button', { name: 'Authorize' }).click();
    await page.getByRole('dialog').getByRole('heading', { name: `Authorize "${XSS}"` }).waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await appRow.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('heading', { name: `Delete "${XSS}"?` }).waitFor();
    await shoot(page, 'xss-desktop-confirm');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await shoot(page, 'xss-desktop-applications');

    const strayImages = await page.evaluate(
      () => [...document.images].filter((img) => !img.src.endsWith('/console/icon.svg')).length,
    );
    assert.equal(strayImages, 0, 'no img element was made from a name');
    assert.equal(jsDialogs.length, before, `no script ran: ${jsDialogs.join(', ')}`);
    await close(context);
  });

  test('the token survives a reload of the tab; Sign out forgets it', async () => {
    const { context, page } = await openSignedIn();
    await go(page, 'Organizations');
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Organizations' }).waitFor();
    await row(page, 'org_acme').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('textbox', { name: 'Admin token' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'Signed out.' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.getByRole('navigation').count(), 0);
    await page.reload();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.equal(await page.getByRole('heading', { level: 1, name: 'Organizations' }).count(), 0);
    await close(context);
  });

  test('screenshots of every page at desktop and phone width', async () => {
    for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
      const { context, page } = await open(viewport);
      await shoot(page, `${label}-01-sign-in`);
      await signIn(page, 'wrong-token-for-the-picture');
      await page.getByRole('alert').filter({ hasText: 'Invalid admin token' }).waitFor();
      await shoot(page, `${label}-02-sign-in-refused`);
      await signIn(page);
      await page.getByRole('heading', { level: 1, name: 'APIs' }).waitFor();
      await row(page, AUDIENCE).waitFor();
      await shoot(page, `${label}-03-apis`);
      await page.getByRole('button', { name: 'New API' }).click();
      await shoot(page, `${label}-04-apis-new`);

      await go(page, 'Organizations');
      await row(page, 'org_acme').waitFor();
      await shoot(page, `${label}-05-organizations`);
      await page.getByRole('button', { name: 'New organization' }).click();
      await shoot(page, `${label}-06-organizations-new`);

      await go(page, 'Applications');
      await page.getByRole('button', { name: 'New application' }).click();
      await page.getByRole('textbox', { name: 'Name' }).fill(`Beta Reporting (${label})`);
      await page.getByRole('combobox', { name: 'Organization' })
        .getByRole('option', { name: 'Beta Inc (org_beta)' }).waitFor({ state: 'attached' });
      await page.getByRole('combobox', { name: 'Organization' }).selectOption({ label: 'Beta Inc (org_beta)' });
      await shoot(page, `${label}-07-applications-new`);
      await page.getByRole('button', { name: 'Create application' }).click();
      await page.getByRole('textbox', { name: 'Client secret' }).waitFor();
      await shoot(page, `${label}-08-client-secret`);
      await page.getByRole('button', { name: 'Done' }).click();
      const appRow = row(page, `Beta Reporting (${label})`);
      await appRow.waitFor();
      await shoot(page, `${label}-09-applications`);
      await appRow.getByRole('button', { name: 'Authorize' }).click();
      await page.getByRole('dialog').getByRole('checkbox', { name: 'read:data', exact: true }).check();
      await shoot(page, `${label}-10-authorize`);
      await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
      await page.getByRole('dialog').waitFor({ state: 'hidden' });
      await appRow.getByRole('button', { name: 'Get token' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Get token' }).click();
      await page.getByRole('dialog').getByText('"org_code": "org_beta"').waitFor();
      await shoot(page, `${label}-11-test-token`);
      await page.getByRole('dialog').getByText('"org_code": "org_beta"').scrollIntoViewIfNeeded();
      await shoot(page, `${label}-11-test-token-claims`);
      await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
      await appRow.getByRole('button', { name: 'Delete' }).click();
      await shoot(page, `${label}-12-confirm-delete`);
      await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();

      await go(page, 'Signing keys');
      await page.getByRole('table', { name: 'Signing keys' }).getByText('retired').first().waitFor();
      await shoot(page, `${label}-13-signing-keys`);
      await close(context);
    }
  });

  test('nothing was asked of another origin, no script error, no secret in the server log', () => {
    const origin = new URL(orgwall.url).origin;
    assert.ok(requested.length > 20, `${requested.length} requests recorded`);
    const foreign = requested.filter((url) => new URL(url).origin !== origin);
    assert.deepEqual(foreign, [], 'requests to another origin');
    // The only expected console errors are the failed calls the tests provoked (401, 404).
    const unexpected = pageErrors.filter(
      (e) => !/Failed to load resource: the server responded with a status of (401|404)/.test(e),
    );
    assert.deepEqual(unexpected, [], 'script errors or policy violations');
    const log = orgwall.log();
    assert.ok(log.length > 0, 'the server logged');
    assert.doesNotMatch(log, /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/, 'a token in the log');
    assert.ok(!log.includes(orgwall.adminToken), 'the admin token in the log');
    assert.ok(!log.includes(world.clientSecret), 'a client secret in the log');
  });
});
