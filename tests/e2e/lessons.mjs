// End to end (issue 10, item 7): a micro-lesson reaches the app through a
// link that cuts it, and plays with no network, in the real app through
// tauri-driver and WebKitWebDriver, with a real relay on loopback.
//
//   node tests/e2e/lessons.mjs
//
// Needs target/debug/{heartbridge-app,heartbridge,heartbridge-relay,linkem}
// built, `tauri-driver` on PATH and a display (starts Xvfb itself when
// DISPLAY is unset).
//
// The team's relay is reached through `linkem` (crates/linkem, as a
// process): the lead claims the team at linkem's address, so every device's
// team relay is behind the emulated link. The lead (CLI) imports a handbook,
// adds a lesson to it — a WAV file of a sine tone written here, several MB
// — and syncs (the sealed chunks go up after the envelopes). The volunteer
// joins with the CLI; from then on the link cuts every connection after a
// random number of bytes (mean 600 KB) and caps the bandwidth. The app opens
// the volunteer's profile, its background sync brings the handbook with the
// lesson's manifest through the cut link; the handbook page lists the lesson
// with its size; "下载" first asks (the team's relay may be a metered link)
// and names the size; after "下载 N MB" the chunks come down through the
// cuts (linkem counts them: at least 3) with progress, resuming each cut
// chunk. Then linkem and the relay are stopped: the player opens the lesson,
// and the test checks the <audio> element can play (readyState >= 2 and a
// `canplay` event, duration about the file's, currentTime advancing after
// play()), that the position is kept and that playing to the end records a
// viewing (one 人次), read back with the CLI from the volunteer's profile.
// Back online (the relay and linkem started again on the same addresses),
// "立即同步" carries the viewing to the lead, whose statistics count it.
// Screenshots: docs/screenshots/app-lessons.png, app-lesson-player.png.
// Last line: "lessons-e2e: N passed, N failed".
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  APP, BIN, HB, ROOT, RELAY, ELEMENT, expect, step, run, needBuilt, display, start, stop, waitUntil, hb, createTeam,
  startRelay, startDriver, open, work,
} from './harness.mjs';

const LINKEM = path.join(BIN, 'linkem');

/** linkem as a process: one command a line on its standard input, one answer a line. */
class Linkem {
  constructor(child) {
    this.child = child;
    this.answers = [];
    this.waiting = [];
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = this.waiting.shift();
        if (w) w(line);
        else this.answers.push(line);
      }
    });
  }
  static async start(upstreamPort, listen = '127.0.0.1:0') {
    const child = start(LINKEM, ['--upstream', `127.0.0.1:${upstreamPort}`, '--listen', listen, '--seed', '7'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const l = new Linkem(child);
    const first = await l.next();
    const m = /^listening on (\S+)$/.exec(first);
    expect(m, `linkem said ${first}`);
    l.addr = m[1];
    return l;
  }
  next(timeoutMs = 10000) {
    if (this.answers.length) return Promise.resolve(this.answers.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('linkem did not answer')), timeoutMs);
      this.waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  }
  async cmd(line) {
    this.child.stdin.write(`${line}\n`);
    const answer = await this.next();
    expect(!answer.startsWith('error'), `linkem: ${line}: ${answer}`);
    return answer;
  }
  async stats() {
    const s = await this.cmd('stats');
    return Object.fromEntries([...s.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
  }
}

/** A mono 16-bit PCM WAV of a 440 Hz tone: `seconds` long at `rate` Hz. */
function toneWav(seconds, rate) {
  const samples = Math.round(seconds * rate);
  const data = samples * 2;
  const b = Buffer.alloc(44 + data);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + data, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(data, 40);
  for (let i = 0; i < samples; i++) b.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 8000), 44 + i * 2);
  return b;
}

async function main() {
  needBuilt(APP, HB, RELAY, LINKEM);
  await display();
  // These machines have no sound device: GStreamer's autoaudiosink would try
  // PulseAudio, ALSA, JACK, OSS and OpenAL and fail; fakeaudiosink
  // (gstreamer1.0-plugins-bad) plays in real time into nothing, so the
  // element's clock runs as it does with speakers.
  process.env.GST_PLUGIN_FEATURE_RANK = 'fakeaudiosink:MAX';

  const relayDb = path.join(work, 'relay.db');
  const [lead, vol] = ['lead', 'vol'].map((n) => path.join(work, n));
  const wav = path.join(work, 'first-minutes.wav');
  // 60 s at 44.1 kHz, 16-bit mono: 5.3 MB, 11 chunks of 512 KiB.
  const SECONDS = 60;
  writeFileSync(wav, toneWav(SECONDS, 44100));
  const title = '危机来电的前三分钟（e2e 微课）';
  let relay = null;
  let link = null;
  let lesson = null;

  await step('a lesson of several MB added by the lead on the CLI reaches the relay behind linkem', async () => {
    const created = createTeam(relayDb, 'e2e-team');
    relay = await startRelay({ db: relayDb });
    link = await Linkem.start(relay.port);
    const relayUrl = `http://${link.addr}`;
    hb(lead, 'team', 'claim', '--relay', relayUrl, '--token', created.lead_token, '--name', '周组长');
    // The code on standard input, as a volunteer would paste it.
    hb(vol, { input: `${hb(lead, 'team', 'invite', '--role', 'volunteer').code}\n` }, 'join', '--name', '小白');
    hb(lead, 'handbook', 'import', path.join(ROOT, 'handbooks', 'zh', 'hotline-work-rules.md'));
    const [book] = hb(lead, 'handbook', 'list');
    expect(book?.id, 'the imported handbook');
    lesson = hb(lead, 'lesson', 'add', '--handbook', book.id, '--title', title, '--duration', String(SECONDS), wav);
    expect(lesson.size === readFileSync(wav).length && lesson.chunks >= 8, `lesson ${JSON.stringify(lesson)}`);
    for (let i = 0; i < 2; i++) hb(lead, 'sync');
    // Every chunk is on the relay now: nothing left to upload.
    expect(hb(lead, 'lesson', 'push').uploaded === 0, 'chunks still waiting on the lead');
    lesson.handbook = book.id;
  });

  // From here on the link cuts every connection after a random number of
  // bytes (mean 600 KB, both directions counted) at 2 MB/s.
  await link.cmd('cut 600000');
  await link.cmd('bandwidth 2000000');
  const before = await link.stats();

  const app = await open(await startDriver(), vol);

  await step("the app's sync brings the handbook with the lesson through the link; its page shows the lesson's size", async () => {
    await app.unlock('你好，小白');
    // The background sync runs at unlock; the handbook arrives with it.
    await app.click('nav a', '手册');
    await app.click('a', '热线工作守则', 60000);
    // At the top of the section, a pointer to the lessons at its end (a phone screen shows one at a time).
    await app.click('[data-testid=to-lessons]', '本手册有 1 节微课', 60000);
    const item = await app.el('[data-testid=lesson]', title, 60000);
    const size = await app.s.exec(`return arguments[0].querySelector('[data-testid=lesson-size]').textContent`, [{ [ELEMENT]: item }]);
    expect(/5(\.\d)? MB · 1:00/.test(size), `lesson size shown as ${size}`);
    await app.el('[data-testid=lesson-state]', '未下载');
  });

  await step('"下载" asks first on a link that may be metered, naming the size, and fetches nothing until agreed', async () => {
    const down = (await link.stats()).down;
    await app.click('[data-testid=lesson-download]', '下载');
    const ask = await app.el('[data-testid=lesson-ask]', '用流量下载？');
    const text = await app.s.text(ask);
    expect(/需要下载 5(\.\d)? MB/.test(text), `the question: ${text}`);
    // Nothing of the lesson came down while the question is open.
    const after = (await link.stats()).down;
    expect(after - down < 100_000, `${after - down} bytes came down before the answer`);
    await app.s.exec(`document.querySelector('[data-testid=lesson-ask]').scrollIntoView()`);
    await app.shot('lessons');
  });

  await step('after "下载 5 MB" the chunks come down through a link that cuts them several times, then it plays offline', async () => {
    await app.click('[data-testid=lesson-ask-yes]', '下载');
    await app.el('[data-testid=lesson-state]', '已下载，可离线播放', 180000);
    const s = await link.stats();
    expect(s.cut - before.cut >= 3, `linkem cut ${s.cut - before.cut} connections during the download`);
    expect(s.down - before.down >= lesson.size, `only ${s.down - before.down} bytes came down`);
    console.log(`    linkem: ${s.cut - before.cut} connections cut, ${s.connections - before.connections} connections, ${s.down - before.down} bytes down`);
    const listed = hb(vol, 'lesson', 'list');
    expect(listed.length === 1 && listed[0].held && listed[0].chunks_held === lesson.chunks, `on the device: ${JSON.stringify(listed)}`);
  });

  await step('with the relay and the link gone, the player plays the lesson from the device', async () => {
    await stop(link.child);
    await relay.stop();
    await app.click('[data-testid=lesson-play]', '播放');
    await app.el('h1', title, 20000);
    await app.el('[data-testid=lesson-media]', null, 60000);
    const r = await app.s.execAsync(`
      const done = arguments[arguments.length - 1];
      const a = document.querySelector('[data-testid=lesson-media]');
      let canplay = a.readyState >= 3;
      a.addEventListener('canplay', () => (canplay = true));
      const t0 = Date.now();
      const wait = () => {
        if ((a.readyState >= 2 && canplay) || a.error || Date.now() - t0 > 30000) {
          done({ readyState: a.readyState, canplay, duration: a.duration, error: a.error && a.error.code, src: a.currentSrc.slice(0, 5) });
        } else setTimeout(wait, 100);
      };
      wait();`);
    expect(!r.error, `media error ${r.error}`);
    expect(r.readyState >= 2 && r.canplay, `readyState ${r.readyState}, canplay ${r.canplay}`);
    expect(Math.abs(r.duration - SECONDS) < 1, `duration ${r.duration}`);
    expect(r.src === 'blob:', `played from ${r.src}`);
    const played = await app.s.execAsync(`
      const done = arguments[arguments.length - 1];
      const a = document.querySelector('[data-testid=lesson-media]');
      const from = a.currentTime;
      a.play().then(() => {
        const t0 = Date.now();
        const wait = () => (a.currentTime - from > 0.5 || Date.now() - t0 > 20000 ? done({ from, to: a.currentTime, paused: a.paused }) : setTimeout(wait, 100));
        wait();
      }, (e) => done({ error: String(e) }));`);
    expect(!played.error, `play(): ${played.error}`);
    expect(played.to - played.from > 0.5, `currentTime went from ${played.from} to ${played.to}`);
    await app.shot('lesson-player');
  });

  await step('the position is kept, and playing to the end records one viewing (人次)', async () => {
    // A seek (and a pause) saves where the volunteer is.
    await app.s.execAsync(`
      const done = arguments[arguments.length - 1];
      const a = document.querySelector('[data-testid=lesson-media]');
      a.addEventListener('seeked', () => { a.pause(); done(true); }, { once: true });
      a.currentTime = 20;`);
    await waitUntil(() => {
      const p = hb(vol, 'lesson', 'list')[0].position_ms ?? 0;
      return p >= 19_500 && p <= 22_000;
    }, 'the position saved at 0:20', 20000);
    await app.s.execAsync(`
      const done = arguments[arguments.length - 1];
      const a = document.querySelector('[data-testid=lesson-media]');
      a.addEventListener('ended', () => done(true), { once: true });
      a.currentTime = a.duration - 1.2;
      a.play();`);
    await app.el('[data-testid=lesson-watched-now]', '已记录：看完一次', 20000);
    await waitUntil(() => hb(vol, 'lesson', 'list')[0].watched_count === 1, 'the viewing on the device', 20000);
    await app.click('a', '返回手册');
    await app.el('[data-testid=lesson-watched]', '已看完 1 次', 20000);
  });

  await step("back online, the viewing reaches the lead's statistics as one 人次", async () => {
    await relay.start();
    link = await Linkem.start(relay.port, link.addr);
    await app.click('nav a', '首页');
    await app.click('button', '立即同步');
    await app.el('[data-testid=connection]', '已连接', 60000);
    await waitUntil(() => {
      hb(lead, 'sync');
      return hb(lead, 'stats').lessons_watched === 1;
    }, "the lead's count of lessons watched", 60000);
    const st = hb(lead, 'stats');
    expect(st.lessons.length === 1 && st.lessons[0].title === title && st.lessons[0].watched === 1, `lessons ${JSON.stringify(st.lessons)}`);
  });
}

await run('lessons-e2e', main);
