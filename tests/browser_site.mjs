// Opens the built documentation site in headless Chromium (the system's, through
// playwright-core) and prints what it found as JSON; screenshots go to OUT.
// Usage: node tests/browser_site.mjs BASE_URL OUT CHROMIUM SEARCH_WORD
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");
const [base, out, executablePath, word] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath,
  // The machine's network is closed: no background requests, no sandbox as root.
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const failed = [];
page.on("requestfailed", (request) => failed.push(request.url()));
const found = {};

async function visit(name, path) {
  const answer = await page.goto(base + path, { waitUntil: "networkidle" });
  const result = {
    status: answer.status(),
    title: await page.title(),
    h1: (await page.locator("article h1").first().textContent()).trim(),
    tabs: await page.locator(".md-tabs__link").allTextContents(),
    sidebar: await page.locator(".md-sidebar--primary .md-nav__link").allTextContents(),
  };
  result.tabs = result.tabs.map((t) => t.trim());
  result.sidebar = result.sidebar.map((t) => t.trim()).filter(Boolean);
  await page.screenshot({ path: `${out}/${name}.png`, fullPage: false });
  found[name] = result;
  return result;
}

await visit("home", "");
await visit("lifecycle", "lifecycle/");
await visit("api", "reference/cli/");
found.api.objects = (await page.locator(".doc-heading").allTextContents()).map((t) => t.replace(/\s+/g, " ").trim());

// Search, typed as a person would, answered by the site's own index in a web worker.
await page.goto(base, { waitUntil: "networkidle" });
await page.locator("input.md-search__input").click();
await page.locator("input.md-search__input").pressSequentially(word, { delay: 50 });
const results = page.locator(".md-search-result__item");
await results.first().waitFor({ timeout: 20000 });
found.search = {
  word,
  meta: (await page.locator(".md-search-result__meta").textContent()).trim(),
  results: (await results.allTextContents()).map((t) => t.replace(/\s+/g, " ").trim()).slice(0, 10),
};
await page.screenshot({ path: `${out}/search.png` });

// The drift report as `make monitor` wrote it, inside its page: its figure must have loaded.
await visit("drift", "run/drift-report/");
const frame = page.frameLocator("iframe.drift-report");
await frame.locator("img").first().waitFor({ timeout: 20000 });
found.drift.figures = await frame.locator("img").evaluateAll((images) =>
  images.map((img) => ({ complete: img.complete, width: img.naturalWidth, height: img.naturalHeight })),
);
await page.locator("iframe.drift-report").scrollIntoViewIfNeeded();
await page.screenshot({ path: `${out}/drift-report.png` });

found.failed_requests = failed;
await browser.close();
console.log(JSON.stringify(found));
