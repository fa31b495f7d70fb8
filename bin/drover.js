#!/usr/bin/env node
'use strict';
// Entry point of the `drover` command: builds the TypeScript sources when the
// compiled output is missing or older than them, then runs the CLI.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const entry = path.join(root, 'dist', 'src', 'cli', 'cli.js');

function newestSource(dir) {
  let newest = 0;
  for (const item of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, item.name);
    if (item.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (item.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

function needsBuild() {
  if (!fs.existsSync(entry)) return true;
  if (!fs.existsSync(path.join(root, 'src'))) return false;
  return newestSource(path.join(root, 'src')) > fs.statSync(entry).mtimeMs;
}

if (needsBuild()) {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch {
    if (!fs.existsSync(entry)) {
      console.error('drover: dist/ is missing and TypeScript is not installed: run "npm install" then "npm run build"');
      process.exit(1);
    }
  }
  if (tsc) {
    process.stderr.write('drover: building (tsc)...\n');
    const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
    if (result.status !== 0) {
      console.error('drover: the build failed (see above)');
      process.exit(1);
    }
    // tsc rewrites only the outputs that changed: mark the build as newer than the sources.
    const now = new Date();
    fs.utimesSync(entry, now, now);
  }
}

require(entry).main(process.argv).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (error) => { console.error(`drover: ${error && error.message ? error.message : error}`); process.exitCode = 1; },
);
