import { Writable } from 'node:stream';
import { createLogger, maskKeys } from '../src/telemetry/logger';

const KEY = 'drv_0123456789ab_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefg';

describe('keys in log lines', () => {
  it('masks anything shaped like a drover key, keeping its public prefix', () => {
    expect(maskKeys(`GET /api/runs/${KEY}?x=${KEY}`)).toBe('GET /api/runs/drv_0123456789ab_***?x=drv_0123456789ab_***');
    expect(maskKeys('drv_short_x and drv_0123456789ab')).toBe('drv_short_x and drv_0123456789ab');
  });

  it('masks them in every field of every line the logger writes: message, paths, errors, nested objects', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    const logger = createLogger('debug', 'test', sink);
    logger.info(`made ${KEY}`);
    logger.debug({ method: 'GET', path: `/admin/queues/${KEY}`, status: 404 }, 'request');
    logger.error({ err: new Error(`bad key ${KEY}`), nested: { deep: [KEY] } }, 'request failed');
    logger.warn({ key: 'named key', apiKey: KEY }, 'redacted by name');
    expect(lines).toHaveLength(4);
    const all = lines.join('');
    expect(all).not.toContain(KEY.slice(-43));
    expect(all).toContain('drv_0123456789ab_***');
    expect(JSON.parse(lines[1]).path).toBe('/admin/queues/drv_0123456789ab_***');
    expect(JSON.parse(lines[3])).toMatchObject({ key: '[redacted]', apiKey: '[redacted]' });
  });
});
