// Loads the dashboard in headless Chromium against an admin API that wants a bearer token:
// enters a wrong token, then the right one, in the page's token form; waits for three healthy
// backends; kills one (a process the calling test started, by PID) and waits for the page to show
// it down; drives Drain, Enable and Disable with the buttons, reading each result back from the
// API; checks that the charts plot exactly the points the page got from /api/v1/series; saves a
// screenshot. Prints what it saw as JSON.
// usage: node dashboard.mjs URL TOKEN PID_TO_KILL SCREENSHOT_PATH TIMEOUT_MS
import { chromium } from "playwright-core";

const [url, token, pid, screenshot, timeoutText] = process.argv.slice(2);
const timeout = Number(timeoutText);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});

// Every /api/v1/series answer the page gets, recorded before the page sees it; `frozen` makes
// further polls fail, so the charts keep what was drawn from the recorded answers.
const recorded = new Map();  // "pool/backend" -> points, in arrival order
let frozen = false;

async function api(path, method = "GET") {
  const response = await fetch(new URL(path, url), { method, headers: { Authorization: "Bearer " + token } });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status}`);
  return response.json();
}
async function apiStates() {
  const { pools } = await api("/api/v1/pools");
  return Object.fromEntries(pools[0].backends.map(b => [b.name, b.state]));
}

// The chart's own geometry (dashboard.html: chart()), to turn recorded values into coordinates.
function expectedPaths(lines, column, width, height) {
  const left = 42, bottom = 16, top = 8, windowMs = 5 * 60 * 1000;
  let max = 0;
  for (const line of lines) for (const p of line) if (p[column] > max) max = p[column];
  max = max > 0 ? max * 1.1 : 1;
  return lines.map(line => line.filter(p => p[column] >= 0).map(p => ({
    t: p[0], y: top + (height - bottom - top) * (1 - p[column] / max), xPerMs: (width - left - 6) / windowMs,
  })));
}

function comparePaths(name, drawn, expected) {
  const problems = [];
  drawn.forEach((d, i) => {
    const coords = [...d.matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)].map(m => [Number(m[1]), Number(m[2])]);
    const want = expected[i];
    if (coords.length !== want.length) {
      problems.push(`${name} line ${i}: ${coords.length} points drawn, ${want.length} from the API`);
      return;
    }
    for (let k = 0; k < want.length; k++) {
      if (Math.abs(coords[k][1] - want[k].y) > 0.06) {
        problems.push(`${name} line ${i} point ${k}: y ${coords[k][1]}, API value gives ${want[k].y.toFixed(2)}`);
      }
      if (k > 0) {
        const dx = coords[k][0] - coords[k - 1][0], want_dx = (want[k].t - want[k - 1].t) * want[k].xPerMs;
        if (Math.abs(dx - want_dx) > 0.11) problems.push(`${name} line ${i} point ${k}: x step ${dx}, API time gives ${want_dx.toFixed(2)}`);
      }
    }
  });
  return problems;
}

try {
  // The page forbids eval (its Content-Security-Policy); waitForFunction needs it.
  const page = await browser.newPage({ viewport: { width: 1400, height: 1050 }, bypassCSP: true });
  await page.route("**/api/v1/series*", async route => {
    if (frozen) return route.abort();
    const response = await route.fetch();
    const body = await response.text();
    if (response.status() === 200) {
      for (const b of JSON.parse(body).backends) {
        const key = b.pool + "/" + b.backend;
        recorded.set(key, (recorded.get(key) || []).concat(b.points));
      }
    }
    await route.fulfill({ response, body });
  });
  await page.goto(url);
  const states = () =>
    page.$$eval("tr[data-backend]", rows =>
      Object.fromEntries(rows.map(r => [r.dataset.backend, r.querySelector(".state").textContent])));
  const waitState = (backend, state, ms = 5000) => page.waitForFunction(
    ([b, s]) => document.querySelector(`tr[data-backend="${b}"] .state`)?.textContent === s,
    [backend, state], { timeout: ms });

  // The token form: asked for, a wrong token keeps it asked, the right one shows the pools.
  await page.waitForSelector("#login", { state: "visible", timeout: 5000 });
  const rowsWithoutToken = (await page.$$("tr[data-backend]")).length;
  await page.fill("#token", "wrong-" + token);
  await page.click('#token-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("status").textContent === "token needed",
                             null, { timeout: 5000 });
  const loginShownAfterWrongToken = await page.isVisible("#login");
  await page.fill("#token", token);
  await page.click('#token-form button[type="submit"]');
  await page.waitForSelector("#login", { state: "hidden", timeout: 5000 });

  await page.waitForFunction(
    () => [...document.querySelectorAll("tr[data-backend] .state")].filter(e => e.textContent === "UP").length === 3,
    null, { timeout: 10000 });
  const before = await states();

  process.kill(Number(pid), "SIGKILL");
  const killed = Date.now();
  await page.waitForFunction(
    () => [...document.querySelectorAll("tr[data-backend] .state")].some(e => e.textContent === "DOWN"),
    null, { timeout });
  const downAfterMs = Date.now() - killed;
  const afterKill = await states();

  // Drain, then Enable, app-1; Disable, then Enable, app-3. The API must agree with the page.
  const steps = [];
  for (const [backend, button, shown] of [["app-1", "Drain", "DRAINING"], ["app-1", "Enable", "UP"],
                                          ["app-3", "Disable", "DISABLED"], ["app-3", "Enable", "UP"]]) {
    await page.click(`tr[data-backend="${backend}"] button:has-text("${button}")`);
    await waitState(backend, shown);
    steps.push({ backend, button, page: await states(), api: await apiStates() });
  }
  // The timeline lists what the once-a-second sampler saw: wait for the events to arrive.
  await page.waitForFunction(
    () => /UP -> DOWN/.test(document.getElementById("events").textContent) &&
          /DRAINING/.test(document.getElementById("events").textContent) &&
          /DISABLED/.test(document.getElementById("events").textContent),
    null, { timeout: 5000 }).catch(() => {});
  const timeline = await page.$eval("#events", e => e.textContent);

  // The charts: let a few more points arrive, stop the polling, let the last answer render,
  // then compare every drawn point with the recorded API answers.
  await page.waitForTimeout(1500);
  frozen = true;
  await page.waitForTimeout(1500);
  const drawn = await page.evaluate(() => {
    const out = {};
    for (const id of ["chart-rps", "chart-err", "chart-p50", "chart-p99"]) {
      const svg = document.getElementById(id);
      out[id] = { width: svg.clientWidth, height: svg.clientHeight,
                  paths: [...svg.querySelectorAll("path")].map(p => p.getAttribute("d")) };
    }
    out.rps = Object.fromEntries([...document.querySelectorAll("tr[data-backend]")].map(
      r => [r.dataset.backend, r.querySelectorAll("td")[4].textContent]));
    return out;
  });
  const { pools } = await api("/api/v1/pools");
  const lines = pools[0].backends.map(b => recorded.get(pools[0].name + "/" + b.name) || []);
  const chartProblems = [];
  for (const [id, column] of [["chart-rps", 1], ["chart-err", 2], ["chart-p50", 3], ["chart-p99", 4]]) {
    const d = drawn[id];
    if (d.paths.length !== lines.length) chartProblems.push(`${id}: ${d.paths.length} lines for ${lines.length} backends`);
    else chartProblems.push(...comparePaths(id, d.paths, expectedPaths(lines, column, d.width, d.height)));
  }
  const points = Object.fromEntries(pools[0].backends.map((b, i) => [b.name, lines[i].length]));
  const lastRps = Object.fromEntries(pools[0].backends.map((b, i) => {
    const last = lines[i][lines[i].length - 1];
    return [b.name, last ? last[1].toFixed(0) : "–"];
  }));
  const servedRps = Math.max(...lines.flat().map(p => p[1]));

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({
    rowsWithoutToken, loginShownAfterWrongToken, before, afterKill, downAfterMs, steps, timeline,
    chartProblems, points, lastRps, tableRps: drawn.rps, servedRps,
  }));
} finally {
  await browser.close();
}
