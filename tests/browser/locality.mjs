// Loads the dashboard in headless Chromium while a locality-aware pool serves traffic: waits for
// the Zones panel to show requests in both zones' rows and the tiers' shares, kills a local
// backend (a process the calling test started, by PID) and waits until the page shows the zone
// tier at 70 % and the spill in its event list. Prints what it saw as JSON.
// usage: node locality.mjs URL PID_TO_KILL TIMEOUT_MS
import { chromium } from "playwright-core";

const [url, pid, timeoutText] = process.argv.slice(2);
const timeout = Number(timeoutText);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});

function panel() {
  const cells = row => [...row.querySelectorAll("td")].map(td => td.textContent);
  const zones = Object.fromEntries([...document.querySelectorAll("#zones tr[data-zone]")]
    .map(row => [row.dataset.zone, cells(row)]));
  const tiers = Object.fromEntries([...document.querySelectorAll("#tiers tr[data-tier]")]
    .map(row => [row.dataset.tier, cells(row)]));
  const zoneLines = [...document.querySelectorAll("#chart-zones path")].filter(p => p.getAttribute("d")).length;
  return {
    visible: !document.getElementById("zones-section").hidden,
    zones, tiers, zoneLines,
    events: document.getElementById("events").textContent,
  };
}

const seen = {};
try {
  // The page forbids eval (its Content-Security-Policy); waitForFunction needs it.
  const page = await browser.newPage({ viewport: { width: 1400, height: 1050 }, bypassCSP: true });
  await page.goto(url);
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll("#zones tr[data-zone]");
    return rows.length === 2 && [...rows].some(r => Number(r.children[2].textContent) > 0);
  }, null, { timeout: 10000 });
  seen.before = await page.evaluate(panel);
  process.kill(Number(pid), "SIGKILL");
  const killed = Date.now();
  await page.waitForFunction(() => {
    const zone = document.querySelector("#tiers tr[data-tier=zone]");
    return zone && zone.children[2].textContent === "70 %" &&
      document.getElementById("events").textContent.includes("TIERS zone 100% -> zone 70%, region 30%");
  }, null, { timeout });
  seen.spillShownAfterMs = Date.now() - killed;
  // Requests reach zone b now: its rate shows once a sampled second has them.
  await page.waitForFunction(() => Number(document.querySelector("#zones tr[data-zone=b]").children[2].textContent) > 0,
    null, { timeout: 5000 });
  seen.after = await page.evaluate(panel);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
