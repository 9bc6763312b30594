// Loads the dashboard in headless Chromium and waits until a pool's list of recent picks shows
// a line containing TEXT; prints the lines it saw as JSON.
// usage: node picks.mjs URL POOL TEXT
import { chromium } from "playwright-core";

const [url, pool, wanted] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
let lines = [];
try {
  // The page forbids eval (its Content-Security-Policy); waitForFunction needs it.
  const page = await browser.newPage({ bypassCSP: true });
  await page.goto(url);
  await page.waitForFunction(([pool, wanted]) => {
    const list = document.querySelector(`.picks[data-pool="${pool}"]`);
    return list && list.textContent.includes(wanted);
  }, [pool, wanted], { timeout: 10000 });
  lines = await page.evaluate(pool =>
    [...document.querySelectorAll(`.picks[data-pool="${pool}"] div`)].map(d => d.textContent), pool);
} finally {
  await browser.close();
}
console.log(JSON.stringify(lines));
