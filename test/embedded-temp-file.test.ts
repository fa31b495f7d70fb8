import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { localFontsView } from '../src/http/bull-board';
import { writePrivateTempFile } from '../src/infra/private-temp';

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

// EJS runs Bull Board's page template as code, so drover's copy of it (without the
// Google Fonts link) lives where no other local user can plant or swap it.
describe('Bull Board\'s page template copy', () => {
  it('is a 0600 file in a private 0700 directory with a random name, without the fonts link', () => {
    const dir = localFontsView();
    expect(dir.startsWith(os.tmpdir())).toBe(true);
    expect(path.basename(dir)).toMatch(/^drover-bull-board-[A-Za-z0-9]{6}$/);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const file = path.join(dir, 'index.ejs');
    expect(fs.lstatSync(file).isSymbolicLink()).toBe(false);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).not.toMatch(/fonts\.(googleapis|gstatic)\.com/);
    expect(localFontsView()).toBe(dir);
  });
});
