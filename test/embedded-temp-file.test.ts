import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writePrivateTempFile } from '../src/embedded/embedded-postgres';

// initdb reads the new server's password from a file: it must not be readable by
// others, guessable, or written through a link someone planted in /tmp.
describe('the embedded start\'s temporary password file', () => {
  it('is a 0600 file created exclusively in a fresh 0700 directory with a random name, and removed after', () => {
    const a = writePrivateTempFile('drover-initdb-', 'password', 'secret\n');
    const b = writePrivateTempFile('drover-initdb-', 'password', 'other\n');
    try {
      expect(path.dirname(a.file)).not.toBe(path.dirname(b.file));
      expect(path.dirname(a.file).startsWith(os.tmpdir())).toBe(true);
      expect(fs.statSync(path.dirname(a.file)).mode & 0o777).toBe(0o700);
      expect(fs.statSync(a.file).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(a.file, 'utf8')).toBe('secret\n');
      expect(fs.lstatSync(a.file).isSymbolicLink()).toBe(false);
    } finally {
      a.remove();
      b.remove();
    }
    expect(fs.existsSync(path.dirname(a.file))).toBe(false);
  });
});
