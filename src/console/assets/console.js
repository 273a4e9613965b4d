// The orgwall console: the tutorial's dashboard on top of the admin API, and nothing else.
// The admin token lives only in sessionStorage (this tab) and is sent as a bearer header on
// every call; there are no cookies. Data is rendered as text only (see dom.js).

import { alertIn, busy, byId, copyField, h, replace, setAlert } from './dom.js';

const TOKEN_KEY = 'orgwall.adminToken';
const PAGES = ['apis', 'organizations', 'applications', 'keys'];
const TITLES = {
  apis: 'APIs',
  organizations: 'Organizations',
  applications: 'Applications',
  keys: 'Signing keys',
};

/** What the admin API last answered; every page re-reads what it shows. */
const state = {
  apis: [],
  orgs: [],
  apps: [],
  /** Org code -> enabled, as last set here, for an org list that does not say. */
  orgEnabled: new Map(),
};

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------------------------------
// The admin API

const adminToken = () => sessionStorage.getItem(TOKEN_KEY);

async function call(method, path, body, token = adminToken()) {
  const init = {
    method,
    headers: { Authorization: `Bearer ${token ?? ''}`, Accept: 'application/json' },
    credentials: 'omit',
    cache: 'no-store',
    redirect: 'error',
    referrerPolicy: 'no-referrer',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(new URL(path, document.baseURI), init);
  } catch {
    throw new ApiFailure(0, 'The server cannot be reached');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.ok) return data;
  // The admin API's own 401 (not the token endpoint's invalid_client for a disabled app).
  const adminRefused = res.status === 401 && !(data && 'error_description' in data);
  if (adminRefused) throw new ApiFailure(401, 'Invalid admin token');
  const message =
    (data && (data.message || data.error_description || data.error)) ||
    `${res.status} ${res.statusText}`.trim();
  throw new ApiFailure(res.status, message);
}

const seg = encodeURIComponent;

/** Runs an action; an error shows in `box` as an alert (a 401 signs out). */
async function attempt(box, label, work) {
  setAlert(box, '');
  try {
    return await work();
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401 && e.message === 'Invalid admin token') {
      signOut('Invalid admin token: sign in again.');
      return undefined;
    }
    if (!(e instanceof ApiFailure)) console.error(e);
    setAlert(box, label ? `${label} failed: ${e.message}` : e.message);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Messages

const globalAlert = byId('alert');
const statusRegion = byId('status');

function say(message) {
  statusRegion.textContent = message;
}

function clearMessages() {
  say('');
  setAlert(globalAlert, '');
}

// ---------------------------------------------------------------------------------------
// Sign in and out

const signInSection = byId('sign-in');
const signInForm = byId('sign-in-form');
const tokenField = byId('admin-token');
const nav = byId('nav');
const signOutButton = byId('sign-out');

function showSignedIn(signedIn) {
  signInSection.hidden = signedIn;
  nav.hidden = !signedIn;
  signOutButton.hidden = !signedIn;
  if (!signedIn) {
    for (const page of PAGES) byId(`page-${page}`).hidden = true;
    signInSection.before(statusRegion, globalAlert);
  }
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.apis = [];
  state.orgs = [];
  state.apps = [];
  for (const dialog of document.querySelectorAll('dialog[open]')) closeModal(dialog);
  clearMessages();
  showSignedIn(false);
  document.title = 'Sign in · orgwall console';
  setAlert(alertIn(signInForm), reason || '');
  tokenField.focus();
}

signInForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const box = alertIn(signInForm);
  const token = tokenField.value.trim();
  if (!token) {
    setAlert(box, 'Enter the admin token.');
    tokenField.setAttribute('aria-invalid', 'true');
    tokenField.focus();
    return;
  }
  await busy(event.submitter, async () => {
    const ok = await call('GET', 'admin/apis', undefined, token).then(
      () => true,
      (e) => {
        setAlert(box, e.status === 401 ? 'Invalid admin token' : `Sign-in failed: ${e.message}`);
        return false;
      },
    );
    if (!ok) {
      tokenField.setAttribute('aria-invalid', 'true');
      tokenField.select();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    tokenField.value = '';
    tokenField.removeAttribute('aria-invalid');
    setAlert(box, '');
    showSignedIn(true);
    await route(true);
  });
});

signOutButton.addEventListener('click', () => {
  signOut('');
  say('Signed out.');
});

// ---------------------------------------------------------------------------------------
// Navigation: one section per hash (#apis, #organizations, #applications, #keys)

function currentPage() {
  const page = location.hash.replace(/^#/, '');
  return PAGES.includes(page) ? page : 'apis';
}

async function route(focusHeading) {
  if (!adminToken()) {
    signOut('');
    return;
  }
  const page = currentPage();
  clearMessages();
  for (const p of PAGES) byId(`page-${p}`).hidden = p !== page;
  // The messages sit under the current page's heading.
  byId(`page-${page}`).querySelector('.page-head').after(statusRegion, globalAlert);
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${TITLES[page]} · orgwall console`;
  if (focusHeading) byId(`page-${page}`).querySelector('h1').focus();
  await LOADERS[page]();
}

window.addEventListener('hashchange', () => route(true));

// Opens and closes the "New ..." forms.
function wireToggle(buttonId, form, onOpen) {
  const button = byId(buttonId);
  const close = () => {
    form.hidden = true;
    form.reset();
    setAlert(alertIn(form), '');
    button.setAttribute('aria-expanded', 'false');
  };
  button.addEventListener('click', () => {
    if (!form.hidden) {
      close();
      return;
    }
    form.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    onOpen?.();
    form.querySelector('input, select').focus();
  });
  form.querySelector('[data-cancel]').addEventListener('click', () => {
    close();
    button.focus();
  });
  return close;
}

/** Checks that required fields are filled; says which is not. */
function missing(form) {
  for (const field of form.querySelectorAll('[required]')) {
    if (!field.value.trim()) {
      const label = form.querySelector(`label[for="${field.id}"]`).textContent;
      setAlert(alertIn(form), `${label} is required.`);
      field.setAttribute('aria-invalid', 'true');
      field.focus();
      return true;
    }
    field.removeAttribute('aria-invalid');
  }
  return false;
}

function emptyRow(columns, text) {
  return h('tr', { role: 'row' }, h('td', { role: 'cell', colspan: columns, class: 'empty' }, text));
}

/** A table cell whose column name is repeated for the stacked phone layout. */
function cell(label, ...children) {
  return h('td', { role: 'cell', 'data-label': label }, ...children);
}

/** After a table is redrawn, puts the focus back on the same action of the same row. */
function refocus(bodyId, key, action) {
  for (const tr of byId(bodyId).rows) {
    if (tr.dataset.key === key) tr.querySelector(`button[data-action="${action}"]`)?.focus();
  }
}

// A modal dialog makes the page behind it inert; aria-hidden says so to tools that read
// roles without knowing about inertness, so that only the dialog's controls are found.
const shell = document.querySelector('.shell');

function openModal(dialog) {
  shell.setAttribute('aria-hidden', 'true');
  dialog.showModal();
}

function unhideShell() {
  if (!document.querySelector('dialog[open]')) shell.removeAttribute('aria-hidden');
}

/** Closes a dialog; the page is reachable again at once, not on the later close event. */
function closeModal(dialog, value) {
  dialog.close(value);
  unhideShell();
}

// Escape closes a dialog without closeModal.
for (const dialog of document.querySelectorAll('dialog')) dialog.addEventListener('close', unhideShell);

function badge(text, kind) {
  return h('span', { class: `badge ${kind}` }, text);
}

// ---------------------------------------------------------------------------------------
// APIs

const apiForm = byId('api-form');
const closeApiForm = wireToggle('new-api', apiForm);

async function loadApis() {
  const apis = await attempt(globalAlert, 'Loading APIs', () => call('GET', 'admin/apis'));
  if (!apis) return;
  state.apis = apis;
  const body = byId('apis-body');
  if (apis.length === 0) {
    replace(body, emptyRow(3, 'No API yet. Register one with "New API".'));
    return;
  }
  replace(
    body,
    apis.map((api) =>
      h(
        'tr',
        { role: 'row' },
        cell('Audience', h('span', { class: 'mono' }, api.audience)),
        cell('Name', api.name),
        cell(
          'Scopes',
          api.scopes.length === 0
            ? h('span', { class: 'muted' }, 'none')
            : h(
                'ul',
                { class: 'chips' },
                api.scopes.map((s) =>
                  h('li', { class: 'chip', title: s.description || undefined }, s.name),
                ),
              ),
        ),
      ),
    ),
  );
}

apiForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (missing(apiForm)) return;
  const audience = byId('api-audience').value.trim();
  const name = byId('api-name').value.trim();
  const scopes = byId('api-scopes')
    .value.split(/\s+/)
    .filter(Boolean)
    .map((scope) => ({ name: scope, description: '' }));
  await busy(event.submitter, async () => {
    const created = await attempt(alertIn(apiForm), 'Creating the API', () =>
      call('POST', 'admin/apis', { audience, name, scopes }),
    );
    if (!created) return;
    closeApiForm();
    await loadApis();
    say(`API "${created.name}" registered for audience ${created.audience}.`);
    byId('new-api').focus();
  });
});

// ---------------------------------------------------------------------------------------
// Organizations

const orgForm = byId('org-form');
const closeOrgForm = wireToggle('new-org', orgForm);

/** Whether an org is enabled: from the API when it says, else from what was last set here. */
function orgIsEnabled(org) {
  if (typeof org.enabled === 'boolean') return org.enabled;
  if (typeof org.disabled === 'boolean') return !org.disabled;
  if ('disabled_at' in org) return org.disabled_at === null;
  return state.orgEnabled.get(org.code) ?? true;
}

async function loadOrgs() {
  const orgs = await attempt(globalAlert, 'Loading organizations', () => call('GET', 'admin/orgs'));
  if (!orgs) return;
  state.orgs = orgs;
  const body = byId('orgs-body');
  if (orgs.length === 0) {
    replace(body, emptyRow(4, 'No organization yet. Add one with "New organization".'));
    return;
  }
  replace(
    body,
    orgs.map((org) => {
      const enabled = orgIsEnabled(org);
      const action = enabled ? 'Disable' : 'Enable';
      return h(
        'tr',
        { role: 'row', 'data-key': org.code },
        cell('Code', h('span', { class: 'mono' }, org.code)),
        cell('Name', org.name),
        cell('Status', enabled ? badge('Enabled', 'ok') : badge('Disabled', 'off')),
        cell(
          'Actions',
          h('div', { class: 'row-actions' },
            h('button', {
              type: 'button',
              'data-action': 'toggle',
              onclick: (e) => setOrgEnabled(e.currentTarget, org, !enabled),
            }, action)),
        ),
      );
    }),
  );
}

async function setOrgEnabled(button, org, enabled) {
  const verb = enabled ? 'enable' : 'disable';
  await busy(button, async () => {
    const done = await attempt(globalAlert, enabled ? 'Enable' : 'Disable', () =>
      call('POST', `admin/orgs/${seg(org.code)}/${verb}`),
    );
    if (done === undefined) return;
    state.orgEnabled.set(org.code, enabled);
    await loadOrgs();
    refocus('orgs-body', org.code, 'toggle');
    say(
      enabled
        ? `Organization ${org.code} enabled. Tokens issued before it was disabled stay revoked.`
        : `Organization ${org.code} disabled: its apps get no token and its tokens are rejected.`,
    );
  });
}

orgForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (missing(orgForm)) return;
  const code = byId('org-code').value.trim();
  const name = byId('org-name').value.trim();
  await busy(event.submitter, async () => {
    const created = await attempt(alertIn(orgForm), 'Creating the organization', () =>
      call('POST', 'admin/orgs', { code, name }),
    );
    if (!created) return;
    closeOrgForm();
    await loadOrgs();
    say(`Organization ${created.code} created.`);
    byId('new-org').focus();
  });
});

// ---------------------------------------------------------------------------------------
// Applications

const appForm = byId('app-form');
const orgSelect = byId('app-org');
const closeAppForm = wireToggle('new-app', appForm, fillOrgOptions);

async function fillOrgOptions() {
  const orgs = await attempt(alertIn(appForm), 'Loading organizations', () =>
    call('GET', 'admin/orgs'),
  );
  if (!orgs) return;
  state.orgs = orgs;
  const chosen = orgSelect.value;
  replace(
    orgSelect,
    h('option', { value: '' }, 'None'),
    orgs.map((org) => h('option', { value: org.code }, `${org.name} (${org.code})`)),
  );
  orgSelect.value = orgs.some((o) => o.code === chosen) ? chosen : '';
}

async function loadApps() {
  const loaded = await attempt(globalAlert, 'Loading applications', () =>
    Promise.all([call('GET', 'admin/apps'), call('GET', 'admin/apis')]),
  );
  if (!loaded) return;
  [state.apps, state.apis] = loaded;
  const body = byId('apps-body');
  if (state.apps.length === 0) {
    replace(body, emptyRow(6, 'No application yet. Create one with "New application".'));
    return;
  }
  replace(body, state.apps.map(appRow));
}

function appRow(app) {
  const grants = app.grants ?? [];
  return h(
    'tr',
    { role: 'row', 'data-key': app.client_id },
    cell('Name', h('strong', {}, app.name)),
    cell('Client ID', h('span', { class: 'mono' }, app.client_id)),
    cell('Organization', app.org_code ? h('span', { class: 'mono' }, app.org_code) : h('span', { class: 'muted' }, 'None (global)')),
    cell(
      'Authorized for',
      grants.length === 0
        ? h('span', { class: 'muted' }, 'nothing yet')
        : h('ul', { class: 'grants' }, grants.map((g) =>
            h('li', {}, h('span', { class: 'mono' }, g.audience), ': ', g.scopes || 'no scope'))),
    ),
    cell('Status', app.enabled ? badge('Enabled', 'ok') : badge('Disabled', 'off')),
    cell(
      'Actions',
      h(
        'div',
        { class: 'row-actions' },
        h('button', { type: 'button', 'data-action': 'authorize', onclick: () => openAuthorize(app) }, 'Authorize'),
        h('button', { type: 'button', onclick: () => openToken(app) }, 'Get token'),
        h('button', { type: 'button', onclick: (e) => rotateSecret(e.currentTarget, app) }, 'Rotate secret'),
        h('button', {
          type: 'button',
          'data-action': 'toggle',
          onclick: (e) => setAppEnabled(e.currentTarget, app, !app.enabled),
        }, app.enabled ? 'Disable' : 'Enable'),
        h('button', { type: 'button', onclick: (e) => revokeTokens(e.currentTarget, app) }, 'Revoke tokens'),
        h('button', { type: 'button', class: 'danger', onclick: () => deleteApp(app) }, 'Delete'),
      ),
    ),
  );
}

appForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (missing(appForm)) return;
  const name = byId('app-name').value.trim();
  const org = orgSelect.value;
  await busy(event.submitter, async () => {
    const created = await attempt(alertIn(appForm), 'Creating the application', () =>
      call('POST', 'admin/apps', org ? { name, org_code: org } : { name }),
    );
    if (!created) return;
    closeAppForm();
    await loadApps();
    say(`Application "${created.name}" created.`);
    showSecret(created, 'New application');
  });
});

const secretDialog = byId('secret-dialog');

function showSecret(credentials, title) {
  replace(byId('secret-title'), `${title}: client credentials`);
  byId('secret-client-id').value = credentials.client_id;
  byId('secret-value').value = credentials.client_secret;
  byId('secret-status').textContent = '';
  openModal(secretDialog);
  byId('secret-value').select();
}

byId('secret-copy').addEventListener('click', async () => {
  const copied = await copyField(byId('secret-value'));
  byId('secret-status').textContent = copied
    ? 'Client secret copied to the clipboard.'
    : 'Selected: press Ctrl+C (⌘C) to copy.';
});

secretDialog.querySelector('form').addEventListener('submit', (event) => {
  event.preventDefault();
  closeModal(secretDialog);
});

secretDialog.addEventListener('close', () => {
  // The secret is not kept anywhere once the dialog closes.
  byId('secret-value').value = '';
  byId('secret-client-id').value = '';
});

async function rotateSecret(button, app) {
  await busy(button, async () => {
    const rotated = await attempt(globalAlert, 'Rotate secret', () =>
      call('POST', `admin/apps/${seg(app.client_id)}/rotate-secret`),
    );
    if (!rotated) return;
    say(`New secret for "${app.name}"; the old one no longer works.`);
    showSecret(rotated, `"${app.name}"`);
  });
}

async function setAppEnabled(button, app, enabled) {
  await busy(button, async () => {
    const done = await attempt(globalAlert, enabled ? 'Enable' : 'Disable', () =>
      call('POST', `admin/apps/${seg(app.client_id)}/${enabled ? 'enable' : 'disable'}`),
    );
    if (done === undefined) return;
    await loadApps();
    refocus('apps-body', app.client_id, 'toggle');
    say(
      enabled
        ? `Application "${app.name}" enabled.`
        : `Application "${app.name}" disabled: it gets no new token.`,
    );
  });
}

async function revokeTokens(button, app) {
  await busy(button, async () => {
    const done = await attempt(globalAlert, 'Revoke tokens', () =>
      call('POST', `admin/apps/${seg(app.client_id)}/revoke-tokens`),
    );
    if (done === undefined) return;
    say(`Every token issued to "${app.name}" so far is revoked.`);
  });
}

const confirmDialog = byId('confirm-dialog');

/** Asks before a destructive action; resolves true on "Confirm". */
function confirmAction(title, text) {
  replace(byId('confirm-title'), title);
  replace(byId('confirm-text'), text);
  confirmDialog.returnValue = '';
  openModal(confirmDialog);
  confirmDialog.querySelector('button[value="cancel"]').focus();
  return new Promise((resolve) => {
    confirmDialog.addEventListener('close', () => resolve(confirmDialog.returnValue === 'confirm'), {
      once: true,
    });
  });
}

confirmDialog.querySelector('form').addEventListener('submit', (event) => {
  event.preventDefault();
  closeModal(confirmDialog, event.submitter?.value ?? 'cancel');
});

async function deleteApp(app) {
  const sure = await confirmAction(
    `Delete "${app.name}"?`,
    `Its credentials stop working at once and it gets no new token. Client ID ${app.client_id}. This cannot be undone.`,
  );
  if (!sure) {
    say('Nothing deleted.');
    return;
  }
  const done = await attempt(globalAlert, 'Delete', () =>
    call('DELETE', `admin/apps/${seg(app.client_id)}`),
  );
  if (done === undefined) return;
  await loadApps();
  byId('apps-title').focus();
  say(`Application "${app.name}" deleted.`);
}

// Authorize: one checkbox per scope of the chosen API.
const authorizeDialog = byId('authorize-dialog');
const authorizeApi = byId('authorize-api');
let authorizing = null;

function apiOptions(select, apis, preferred) {
  replace(
    select,
    apis.map((api) => h('option', { value: api.audience }, `${api.name} (${api.audience})`)),
  );
  if (preferred && apis.some((a) => a.audience === preferred)) select.value = preferred;
}

async function freshApis(box) {
  const apis = await attempt(box, 'Loading APIs', () => call('GET', 'admin/apis'));
  if (apis) state.apis = apis;
  return apis;
}

async function openAuthorize(app) {
  authorizing = app;
  const form = authorizeDialog.querySelector('form');
  setAlert(alertIn(form), '');
  replace(byId('authorize-title'), `Authorize "${app.name}"`);
  replace(byId('authorize-scopes'));
  replace(authorizeApi);
  openModal(authorizeDialog);
  const apis = await freshApis(alertIn(form));
  if (!apis) return;
  if (apis.length === 0) {
    setAlert(alertIn(form), 'No API is registered yet: add one on the APIs page first.');
    return;
  }
  apiOptions(authorizeApi, apis, app.grants?.[0]?.audience);
  renderScopeBoxes();
  authorizeApi.focus();
}

function renderScopeBoxes() {
  const api = state.apis.find((a) => a.audience === authorizeApi.value);
  const grant = authorizing?.grants?.find((g) => g.audience === authorizeApi.value);
  const granted = new Set((grant?.scopes ?? '').split(' ').filter(Boolean));
  const container = byId('authorize-scopes');
  if (!api || api.scopes.length === 0) {
    replace(container, h('p', { class: 'muted' }, 'This API has no scopes.'));
    return;
  }
  replace(
    container,
    api.scopes.map((scope, i) => {
      const id = `scope-${i}`;
      const hint = scope.description ? `${id}-hint` : undefined;
      return h(
        'div',
        { class: 'check' },
        h('input', {
          type: 'checkbox',
          id,
          value: scope.name,
          checked: granted.has(scope.name),
          'aria-describedby': hint,
        }),
        h('label', { for: id }, scope.name),
        hint ? h('span', { id: hint, class: 'hint' }, scope.description) : null,
      );
    }),
  );
}

authorizeApi.addEventListener('change', renderScopeBoxes);

authorizeDialog.querySelector('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const app = authorizing;
  if (!app || !authorizeApi.value) return;
  const scopes = [...form.querySelectorAll('#authorize-scopes input:checked')].map((c) => c.value);
  await busy(event.submitter, async () => {
    const grant = await attempt(alertIn(form), 'Saving the grant', () =>
      call('POST', `admin/apps/${seg(app.client_id)}/authorize`, {
        audience: authorizeApi.value,
        scopes: scopes.join(' '),
      }),
    );
    if (!grant) return;
    closeModal(authorizeDialog);
    await loadApps();
    refocus('apps-body', app.client_id, 'authorize');
    say(`"${app.name}" may now ask ${grant.audience} for: ${grant.scopes || 'no scope'}.`);
  });
});

// Test token: a real token for the app, decoded for reading.
const tokenDialog = byId('token-dialog');
const tokenApi = byId('token-api');
let testing = null;

async function openToken(app) {
  testing = app;
  const form = tokenDialog.querySelector('form');
  setAlert(alertIn(form), '');
  byId('token-result').hidden = true;
  byId('token-value').value = '';
  replace(byId('token-title'), `Test token for "${app.name}"`);
  replace(tokenApi);
  openModal(tokenDialog);
  const apis = await freshApis(alertIn(form));
  if (!apis) return;
  if (apis.length === 0) {
    setAlert(alertIn(form), 'No API is registered yet: add one on the APIs page first.');
    return;
  }
  apiOptions(tokenApi, apis, app.grants?.[0]?.audience);
  tokenApi.focus();
}

/** The JSON of a JWT part (base64url, UTF-8). */
function decodePart(part) {
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function when(seconds) {
  return typeof seconds === 'number' ? new Date(seconds * 1000).toISOString().replace('.000Z', 'Z') : '';
}

tokenDialog.querySelector('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const app = testing;
  if (!app || !tokenApi.value) return;
  await busy(event.submitter, async () => {
    const issued = await attempt(alertIn(form), 'Get token', () =>
      call('POST', `admin/apps/${seg(app.client_id)}/token`, { audience: tokenApi.value }),
    );
    if (!issued) return;
    const [header, claims] = issued.access_token.split('.').slice(0, 2).map(decodePart);
    byId('token-value').value = issued.access_token;
    byId('token-header').textContent = JSON.stringify(header, null, 2);
    byId('token-claims').textContent = JSON.stringify(claims, null, 2);
    const facts = [
      ['Organization', claims.org_code ?? 'none (global app)'],
      ['Scopes', claims.scope ?? claims.scp ?? ''],
      ['Expires', `${when(claims.exp)} (in ${issued.expires_in} s)`],
      ['Signed by', `${header.alg}, key ${header.kid}`],
    ];
    replace(byId('token-summary'), facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
    byId('token-result').hidden = false;
    byId('token-status').textContent = `Token issued for ${claims.org_code ?? 'no organization'}.`;
  });
});

byId('token-copy').addEventListener('click', async () => {
  const copied = await copyField(byId('token-value'));
  byId('token-status').textContent = copied
    ? 'Access token copied to the clipboard.'
    : 'Selected: press Ctrl+C (⌘C) to copy.';
});

tokenDialog.addEventListener('close', () => {
  byId('token-value').value = '';
  byId('token-result').hidden = true;
});

for (const button of document.querySelectorAll('dialog [data-close]')) {
  button.addEventListener('click', () => closeModal(button.closest('dialog')));
}

// ---------------------------------------------------------------------------------------
// Signing keys

function stamp(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace(/\.\d+Z$/, 'Z').replace('T', ' ');
}

async function loadKeys() {
  const listed = await attempt(globalAlert, 'Loading signing keys', () => call('GET', 'admin/keys'));
  if (!listed) return;
  const body = byId('keys-body');
  if (listed.keys.length === 0) {
    replace(body, emptyRow(5, 'No signing key yet: one is made when the server starts.'));
    return;
  }
  replace(
    body,
    listed.keys.map((key) =>
      h(
        'tr',
        { role: 'row' },
        cell('Key ID', h('span', { class: 'mono kid' }, key.kid)),
        cell('Algorithm', key.alg),
        cell('Status', key.status === 'signing' ? badge('signing', 'ok') : badge(key.status, 'off')),
        cell('Created', h('time', { datetime: key.created_at }, stamp(key.created_at))),
        cell('Retired', key.retired_at ? h('time', { datetime: key.retired_at }, stamp(key.retired_at)) : '—'),
      ),
    ),
  );
}

byId('rotate-keys').addEventListener('click', async (event) => {
  await busy(event.currentTarget, async () => {
    const rotated = await attempt(globalAlert, 'Rotate keys', () => call('POST', 'admin/keys/rotate'));
    if (!rotated) return;
    await loadKeys();
    say(`A new key signs from now on (${rotated.kid ?? 'rotated'}); the old one stays published until its tokens expire.`);
  });
});

const LOADERS = {
  apis: loadApis,
  organizations: loadOrgs,
  applications: loadApps,
  keys: loadKeys,
};

// ---------------------------------------------------------------------------------------
// Start

if (adminToken()) {
  showSignedIn(true);
  route(false);
} else {
  signOut('');
}
