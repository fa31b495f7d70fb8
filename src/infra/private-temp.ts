import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Writes `content` to a new file in a new private directory of the system
 * temp dir (random name, mode 0700; the file mode 0600, created exclusively,
 * so a planted file or symlink is never followed or overwritten), owned by
 * `owner` when given. `remove()` deletes both.
 */
export function writePrivateTempFile(prefix: string, name: string, content: string, owner?: { uid: number; gid: number }): { file: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    fs.chmodSync(dir, 0o700);
    const file = path.join(dir, name);
    fs.writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
    if (owner) {
      fs.chownSync(dir, owner.uid, owner.gid);
      fs.chownSync(file, owner.uid, owner.gid);
    }
    return { file, remove };
  } catch (error) {
    remove();
    throw error;
  }
}
