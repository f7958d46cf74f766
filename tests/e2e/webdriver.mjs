// A minimal W3C WebDriver client (Node 20 fetch): enough to drive the real
// Heartbridge window through tauri-driver and WebKitWebDriver.

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  static async start(base, application, args = [], timeoutMs = 30000) {
    const body = {
      capabilities: {
        alwaysMatch: { 'tauri:options': { application, args } },
      },
    };
    const r = await call(base, 'POST', '/session', body, timeoutMs);
    return new Session(base, r.sessionId ?? r.value?.sessionId);
  }

  cmd(method, path, body) {
    return call(this.base, method, `/session/${this.id}${path}`, body).then((r) => r.value);
  }

  async end() {
    try {
      await this.cmd('DELETE', '');
    } catch {
      /* already gone */
    }
  }

  async find(css, timeoutMs = 15000) {
    return this.waitFor(async () => {
      const els = await this.cmd('POST', '/elements', { using: 'css selector', value: css });
      for (const e of els) {
        const id = e[ELEMENT];
        if (await this.cmd('GET', `/element/${id}/displayed`).catch(() => false)) return id;
      }
      return null;
    }, timeoutMs, `element ${css}`);
  }

  /** The first visible element matching `css` whose text contains `text`. */
  async findText(css, text, timeoutMs = 15000) {
    return this.waitFor(async () => {
      const els = await this.cmd('POST', '/elements', { using: 'css selector', value: css });
      for (const e of els) {
        const id = e[ELEMENT];
        const t = await this.cmd('GET', `/element/${id}/text`).catch(() => '');
        if (t.includes(text)) return id;
      }
      return null;
    }, timeoutMs, `${css} with text ${JSON.stringify(text)}`);
  }

  async click(el) {
    // Centre it first: a fixed bottom bar or a notice may cover the edges.
    await this.cmd('POST', '/execute/sync', {
      script: "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})",
      args: [{ [ELEMENT]: el }],
    }).catch(() => {});
    await this.cmd('POST', `/element/${el}/click`, {});
  }

  async type(el, text) {
    await this.cmd('POST', `/element/${el}/clear`, {}).catch(() => {});
    await this.cmd('POST', `/element/${el}/value`, { text });
  }

  /** Presses `key` with `modifier` held (W3C actions), e.g. chord('\uE009', 'l') for Ctrl+L. */
  async chord(modifier, key) {
    await this.cmd('POST', '/actions', {
      actions: [
        {
          type: 'key',
          id: 'keyboard',
          actions: [
            { type: 'keyDown', value: modifier },
            { type: 'keyDown', value: key },
            { type: 'keyUp', value: key },
            { type: 'keyUp', value: modifier },
          ],
        },
      ],
    });
    await this.cmd('DELETE', '/actions').catch(() => {});
  }

  async text(el) {
    return this.cmd('GET', `/element/${el}/text`);
  }

  /** Runs a script; a returned DOM element comes back as its element id. */
  async exec(script, args = []) {
    const v = await this.cmd('POST', '/execute/sync', { script, args });
    return v && typeof v === 'object' && ELEMENT in v ? v[ELEMENT] : v;
  }

  async execAsync(script, args = []) {
    return this.cmd('POST', '/execute/async', { script, args });
  }

  async screenshot() {
    // Two animation frames first: the first screenshot can be one frame stale.
    await this.execAsync(
      'const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));',
    ).catch(() => {});
    return Buffer.from(await this.cmd('GET', '/screenshot'), 'base64');
  }

  async waitFor(fn, timeoutMs, what) {
    const end = Date.now() + timeoutMs;
    let last;
    while (Date.now() < end) {
      try {
        const v = await fn();
        if (v) return v;
      } catch (e) {
        last = e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
  }
}

async function call(base, method, path, body, timeoutMs = 20000) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  try {
    const res = await fetch(base + path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctrl.signal,
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok || json.value?.error) {
      throw new Error(`${method} ${path}: ${json.value?.error ?? res.status} ${json.value?.message ?? ''}`);
    }
    return json;
  } finally {
    clearTimeout(timer);
  }
}
