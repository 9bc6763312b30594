// The seed system's walk-through in a real browser: opens the session-app page through usher,
// logs in with the form, watches the page's own once-a-second refresh name every server while the
// user stays logged in, kills one server (a process the calling test started, by PID), and
// watches on. Saves a screenshot and prints what it saw as JSON.
// usage: node session_app.mjs URL PID_TO_KILL SCREENSHOT_PATH
import { chromium } from "playwright-core";

const [url, pid, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 440 } });
  await page.goto(url);
  await page.fill("input[name=user]", "alice");
  await page.click("button");
  await page.waitForSelector("#me:not([hidden])");

  // Reads the page after each of its refreshes: (server, user shown, visits, error text).
  const watch = async (count) => {
    const seen = [];
    let last = await page.textContent("#visits");
    while (seen.length < count) {
      await page.waitForFunction((v) => document.getElementById("visits").textContent !== v ||
        document.getElementById("error").textContent !== "", last, { timeout: 5000 });
      const view = await page.evaluate(() => ({
        server: document.getElementById("server").textContent,
        user: document.getElementById("me").hidden ? null : document.getElementById("user").textContent,
        visits: Number(document.getElementById("visits").textContent),
        error: document.getElementById("error").textContent,
      }));
      seen.push(view);
      last = String(view.visits);
    }
    return seen;
  };
  const before = await watch(4);
  process.kill(Number(pid), "SIGKILL");
  const after = await watch(4);
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ before, after }));
} finally {
  await browser.close();
}
