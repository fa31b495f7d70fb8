import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * drover's version, from its package.json: the nearest one above this file
 * named `drover` (the repository's, or the installed package's; the compiled
 * file sits one level deeper than the source).
 */
function readVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'drover' && typeof pkg.version === 'string') return pkg.version;
    }
    if (path.dirname(dir) === dir) return '0.0.0';
  }
}

/** drover's version (package.json). */
export const VERSION: string = readVersion();
