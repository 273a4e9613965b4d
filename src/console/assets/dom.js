// Small DOM helpers. Everything that may come from a user (names, codes, audiences, errors)
// goes in as text: through textContent, text nodes or attribute values, never as HTML.

/**
 * Builds an element. `attrs` are attribute values (strings, or true for a bare attribute);
 * `on*` keys take functions and become listeners; children are nodes or strings (text).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) {
      if (typeof value !== 'function') throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const byId = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`BUG: no element #${id}`);
  return el;
};

/** Shows `message` in an alert box (role=alert), or hides the box when message is empty. */
export function setAlert(box, message) {
  box.textContent = message || '';
  box.hidden = !message;
}

/** The alert box inside `container` (a form or dialog). */
export const alertIn = (container) => container.querySelector('[role="alert"]');

/** Runs `work` with `button` disabled, so that a double click does not act twice. */
export async function busy(button, work) {
  if (!button) return work();
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** Copies the value of a read-only field; falls back to selecting it for Ctrl+C. */
export async function copyField(field) {
  try {
    await navigator.clipboard.writeText(field.value);
    return true;
  } catch {
    field.focus();
    field.select();
    return false;
  }
}
