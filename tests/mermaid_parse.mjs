// Parses the Mermaid blocks of a Markdown file with Mermaid's own parser (npm package `mermaid`, in a
// jsdom window; installed by `make setup`), as GitHub does before drawing them; prints one result per
// block as JSON: {"type": "xychart"} or {"error": "..."}.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

const text = readFileSync(process.argv[2], "utf8");
const blocks = [...text.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((match) => match[1]);
const results = [];
for (const block of blocks) {
  try {
    results.push({ type: (await mermaid.parse(block)).diagramType });
  } catch (error) {
    results.push({ error: String(error.message || error).slice(0, 500) });
  }
}
console.log(JSON.stringify(results));
