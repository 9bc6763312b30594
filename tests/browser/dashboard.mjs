// Loads the dashboard in headless Chromium, waits for three healthy backends, kills one (a
// process the calling test started, by PID), waits for the page to show it down, drains another
// with its button, and saves a screenshot. Prints what it saw as JSON.
// usage: node dashboard.mjs URL PID_TO_KILL SCREENSHOT_PATH TIMEOUT_MS
import { chromium } from "playwright-core";

const [url, pid, screenshot, timeoutText] = process.argv.slice(2);
const timeout = Number(timeoutText);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  // The page forbids eval (its Content-Security-Policy); waitForFunction needs it.
  const page = await browser.newPage({ viewport: { width: 1400, height: 1050 }, bypassCSP: true });
  await page.goto(url);
  const states = () =>
    page.$$eval("tr[data-backend]", rows =>
      Object.fromEntries(rows.map(r => [r.dataset.backend, r.querySelector(".state").textContent])));
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

  await page.click('tr[data-backend="app-1"] button:has-text("Drain")');
  await page.waitForFunction(
    () => document.querySelector('tr[data-backend="app-1"] .state').textContent === "DRAINING",
    null, { timeout: 5000 });
  const afterDrain = await states();
  // The timeline lists what the once-a-second sampler saw: wait for both events to arrive.
  await page.waitForFunction(
    () => /UP -> DOWN/.test(document.getElementById("events").textContent) &&
          /DRAINING/.test(document.getElementById("events").textContent),
    null, { timeout: 5000 }).catch(() => {});
  const timeline = await page.$eval("#events", e => e.textContent);

  await page.waitForTimeout(1500);  // a few more points on the charts
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ before, afterKill, downAfterMs, afterDrain, timeline }));
} finally {
  await browser.close();
}
