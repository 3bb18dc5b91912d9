// Opens `wash ui` in headless Chromium and checks what the e2e test asks:
// argv: URL HOST_ID APP COMPONENT SCREENSHOT. Prints READY once the page
// lists the host, the app as deployed and the component; then, for each
// stdin line `expect ID COUNT`, prints FOUND when the page shows component
// ID at COUNT max instances, and saves the screenshot.
import { chromium } from "playwright-core";
import readline from "node:readline";

const [url, host, app, component, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });

async function fail(why) {
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  console.log(`FAILED ${why}`);
  await browser.close();
  process.exit(1);
}

try {
  await page.goto(url);
  await page.waitForSelector(`[data-host="${host}"]`, { timeout: 30000 });
  await page.waitForFunction(
    (name) => document.querySelector(`[data-app-status="${name}"]`)?.textContent === "deployed",
    app,
    { timeout: 60000 },
  );
  await page.waitForSelector(`[data-component="${component}"]`, { timeout: 30000 });
} catch (err) {
  await fail(err.message.split("\n")[0]);
}
console.log("READY");

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const [verb, id, count] = line.trim().split(/\s+/);
  if (verb !== "expect") continue;
  const started = Date.now();
  try {
    await page.waitForSelector(`[data-component="${id}"][data-max="${count}"]`, { timeout: 10000 });
  } catch (err) {
    await fail(err.message.split("\n")[0]);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`FOUND ${Date.now() - started}`);
  break;
}
await browser.close();
process.exit(0);
