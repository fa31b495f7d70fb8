import { Writable } from 'node:stream';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { Drover } from '../src/drover';
import { startServer, type DroverServer } from '../src/http/server';
import { createLogger } from '../src/telemetry/logger';
import { Tracing } from '../src/telemetry/tracing';
import { parseTracingConfig } from '../src/telemetry/tracing-config';
import type { DroverWorker } from '../src/worker/worker';
import { loadConfig } from '../src/config';
import { FAST_WORKER, eventually } from './helpers/engine';
import { createTestDatabase, describeEachBackend, redisUrlFor, uniqueNamespace } from './helpers/env';
import { cliEnv, http, runCli, spawnDrover } from './helpers/server-process';

/** a → (b, c) → d → e; c fails its first attempt and is retried. */
const FIVE_STEPS = {
  name: 'traced',
  steps: [
    { name: 'a', processor: 'work' },
    { name: 'b', processor: 'work', dependsOn: ['a'] },
    { name: 'c', processor: 'flaky', dependsOn: ['a'], attempts: 3, backoff: { type: 'fixed' as const, delayMs: 20 } },
    { name: 'd', processor: 'work', dependsOn: ['b', 'c'] },
    { name: 'e', processor: 'work', dependsOn: ['d'] },
  ],
};

const ATTEMPT = /^drover\.step traced\//;
const isPg = (s: ReadableSpan) => s.attributes['db.system'] === 'postgresql' || s.attributes['db.system.name'] === 'postgresql';
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** The spans of one trace, and a way to walk up from a span to the root. */
function traceOf(spans: ReadableSpan[], traceId: string) {
  const inTrace = spans.filter((s) => s.spanContext().traceId === traceId);
  const byId = new Map(inTrace.map((s) => [s.spanContext().spanId, s]));
  const ancestors = (s: ReadableSpan): ReadableSpan[] => {
    const up: ReadableSpan[] = [];
    for (let p = byId.get(parentOf(s) ?? ''); p; p = byId.get(parentOf(p) ?? '')) up.push(p);
    return up;
  };
  return { spans: inTrace, ancestors };
}

describeEachBackend('tracing a run', (backend) => {
  let exporter: InMemorySpanExporter;
  let provider: NodeTracerProvider;
  let tracing: Tracing;
  let drover: Drover;
  let worker: DroverWorker;
  let logLines: string[];
  let flakyCalls: number;

  beforeEach(async () => {
    exporter = new InMemorySpanExporter();
    provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    tracing = new Tracing({ tracerProvider: provider });
    logLines = [];
    const sink = new Writable({ write(chunk, _enc, done) { logLines.push(String(chunk)); done(); } });
    const logger = createLogger('warn', 'drover', sink, { traceIds: true });
    const databaseUrl = await createTestDatabase();
    drover = await Drover.connect({ databaseUrl, redisUrl: redisUrlFor(backend), namespace: uniqueNamespace(), tracing, logger });
    flakyCalls = 0;
    worker = drover.createWorker({
      ...FAST_WORKER,
      workflows: [FIVE_STEPS],
      processors: {
        work: async (ctx) => ({ step: ctx.step.name }),
        flaky: async (ctx) => {
          flakyCalls += 1;
          if (ctx.step.attempt === 1) throw new Error('first attempt fails on purpose');
          return { step: ctx.step.name };
        },
      },
    });
    await worker.run();
  });
  afterEach(async () => {
    await worker?.close();
    await drover?.close();
    await tracing?.close();
    await provider?.shutdown();
  });

  /** Runs the workflow and returns its trace once the last step's spans ended. */
  async function runTraced(create: () => Promise<{ id: string }>) {
    const run = await create();
    const done = await drover.waitForRun(run.id, { timeoutMs: 30_000 });
    expect(done.status).toBe('succeeded');
    expect(flakyCalls).toBe(2);
    // The last attempt's span ends just after its success is recorded: wait for it (and BullMQ's process span).
    await eventually(() => {
      const spans = exporter.getFinishedSpans();
      const last = spans.find((s) => s.name === 'drover.step traced/e');
      return last && spans.some((s) => s.spanContext().spanId === parentOf(last));
    }, 10_000, "the last step's span and its job's process span");
    const root = exporter.getFinishedSpans().find((s) => s.name === 'drover.createRun' && s.attributes['drover.run.id'] === run.id);
    expect(root).toBeDefined();
    return { run, root: root!, ...traceOf(exporter.getFinishedSpans(), root!.spanContext().traceId) };
  }

  function expectCompleteTrace(t: Awaited<ReturnType<typeof runTraced>>) {
    const attempts = t.spans.filter((s) => ATTEMPT.test(s.name));
    // One span per attempt of every step: five steps, one of them retried.
    expect(attempts.map((s) => `${s.attributes['drover.step.name']}#${s.attributes['drover.step.attempt']}`).sort())
      .toEqual(['a#1', 'b#1', 'c#1', 'c#2', 'd#1', 'e#1']);
    for (const s of attempts) {
      expect(s.attributes['drover.run.id']).toBe(t.run.id);
      // Every attempt hangs under the run's createRun span, through BullMQ's spans.
      expect(t.ancestors(s)).toContain(t.root);
      expect(t.ancestors(s).some((p) => p.name.startsWith('process '))).toBe(true);
    }
    const failed = attempts.find((s) => s.attributes['drover.step.name'] === 'c' && s.attributes['drover.step.attempt'] === 1)!;
    expect(failed.status).toMatchObject({ code: 2, message: 'first attempt fails on purpose' }); // SpanStatusCode.ERROR
    expect(failed.attributes['drover.step.outcome']).toBe('attempt_failed');
    expect(failed.events.map((e) => e.name)).toContain('exception');
    for (const s of attempts.filter((a) => a !== failed)) expect([s.attributes['drover.step.outcome'], s.status.code]).toEqual(['succeeded', 0]);
    // A step runs after its parent's success, whose attempt enqueued it: d after b or c, e after d.
    const e = attempts.find((s) => s.attributes['drover.step.name'] === 'e')!;
    expect(t.ancestors(e).map((p) => p.attributes['drover.step.name']).filter(Boolean)).toEqual(['d', expect.stringMatching(/^[bc]$/), 'a']);
    // BullMQ's calls and the Postgres statements are in the same trace.
    expect(t.spans.some((s) => s.name.startsWith('addBulk '))).toBe(true);
    const pg = t.spans.filter(isPg);
    expect(pg.length).toBeGreaterThan(5);
    expect(pg.some((s) => t.ancestors(s).includes(t.root) && !t.ancestors(s).some((p) => ATTEMPT.test(p.name)))).toBe(true); // createRun's own statements
    expect(pg.some((s) => t.ancestors(s).some((p) => ATTEMPT.test(p.name)))).toBe(true); // the attempts' (their success)
    // Statements are recorded without their parameters.
    for (const s of pg) expect(Object.keys(s.attributes).some((k) => /values|param/i.test(k))).toBe(false);
  }

  test('a 5-step run from the in-process createRun shows up complete in one trace', async () => {
    const t = await runTraced(() => drover.createRun({ workflow: 'traced', input: { n: 1 } }));
    expect(parentOf(t.root)).toBeUndefined();
    expectCompleteTrace(t);
    // The retried attempt's warning carries the ids of the attempt's trace.
    const warning = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'step attempt failed; retrying');
    expect(warning).toMatchObject({ trace_id: t.root.spanContext().traceId, span_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  test("steps promoted in one group commit each continue their own run's trace", async () => {
    await worker.close();
    // x → y, three runs. The holder's success is held at its y row's lock while the two joiners'
    // successes arrive: they are recorded (and their y enqueued) together, in the holder's flush.
    let holderReturned!: () => void;
    const returned = new Promise<void>((r) => { holderReturned = r; });
    const joinersDone: string[] = [];
    const chain = { name: 'chain', steps: [{ name: 'x', processor: 'x' }, { name: 'y', processor: 'work', dependsOn: ['x'] }] };
    await drover.registerWorkflows([chain]);
    const holder = await drover.createRun({ workflow: 'chain', input: { role: 'holder' } });
    const joiners = [await drover.createRun({ workflow: 'chain', input: { role: 'joiner' } }), await drover.createRun({ workflow: 'chain', input: { role: 'joiner' } })];
    const { Client } = await import('pg');
    const lock = new Client({ connectionString: (drover as any).options.databaseUrl });
    await lock.connect();
    try {
      await lock.query('BEGIN');
      // The row its success promotes (its start does not touch it).
      await lock.query(`SELECT 1 FROM drover.steps WHERE run_id = $1 AND name = 'y' FOR UPDATE`, [holder.id]);
      worker = drover.createWorker({
        ...FAST_WORKER, workflows: [chain],
        processors: {
          work: async () => ({}),
          x: async (ctx) => {
            if (ctx.input.role === 'holder') holderReturned();
            else {
              await returned;
              joinersDone.push(ctx.run.id);
            }
            return {};
          },
        },
      });
      await worker.run();
      await eventually(() => joinersDone.length === 2, 10_000, 'both joiners returned');
      await new Promise((r) => setTimeout(r, 200)); // their successes join the batcher's queue
    } finally {
      await lock.query('ROLLBACK');
      await lock.end();
    }
    for (const run of [holder, ...joiners]) expect((await drover.waitForRun(run.id, { timeoutMs: 20_000 })).status).toBe('succeeded');
    await eventually(() => exporter.getFinishedSpans().filter((s) => s.name === 'drover.step chain/y').length === 3, 10_000, 'the y spans');
    const spans = exporter.getFinishedSpans();
    for (const run of [holder, ...joiners]) {
      const root = spans.find((s) => s.name === 'drover.createRun' && s.attributes['drover.run.id'] === run.id)!;
      const y = spans.find((s) => s.name === 'drover.step chain/y' && s.attributes['drover.run.id'] === run.id)!;
      expect({ run: run.id, trace: y.spanContext().traceId }).toEqual({ run: run.id, trace: root.spanContext().traceId });
    }
  });

  test("a run created over HTTP continues the producer's trace from its traceparent header", async () => {
    let server: DroverServer | undefined;
    try {
      server = await startServer({ drover, auth: false, port: 0 });
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const parentSpan = '00f067aa0ba902b7';
      const res = await http(`${server.url}/api/runs`, { method: 'POST', json: { workflow: 'traced' }, headers: { traceparent: `00-${traceId}-${parentSpan}-01` } });
      expect(res.status).toBe(201);
      const t = await runTraced(async () => res.body);
      expect(t.root.spanContext().traceId).toBe(traceId);
      expect(parentOf(t.root)).toBe(parentSpan);
      expectCompleteTrace(t);
    } finally {
      await server?.close();
    }
  });
});

describe('tracing is off unless the OTEL_* variables turn it on', () => {
  test('no variable, or none, or the SDK disabled: off', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_SERVICE_NAME: 'x' }).tracing).toBeUndefined();
  });

  test('an exporter or an OTLP endpoint turns it on', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toEqual({ exporters: ['otlp'], serviceName: undefined, sampler: 'parentbased_always_on', samplerRatio: 1 });
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'console', OTEL_SERVICE_NAME: 'api', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).tracing)
      .toEqual({ exporters: ['console'], serviceName: 'api', sampler: 'parentbased_traceidratio', samplerRatio: 0.25 });
  });

  test('values drover cannot honour are one clear error', () => {
    const env = (vars: Record<string, string>) => () => parseTracingConfig((name) => vars[name]);
    expect(env({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow('OTEL_TRACES_EXPORTER must be otlp, console or none (got "zipkin")');
    expect(env({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/exports traces over http\/json/);
    expect(env({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/must be an http:\/\/ or https:\/\/ URL/);
    expect(env({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/from 0 to 1/);
    expect(env({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER must be one of/);
  });
});

describe('drover server with OTEL_TRACES_EXPORTER=console', () => {
  test("exports the spans of a run's creation, continuing the request's traceparent", async () => {
    const databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace();
    const drover = await Drover.connect({ databaseUrl, redisUrl: redisUrlFor('redis'), namespace });
    let key: string;
    try {
      await drover.registerWorkflows([FIVE_STEPS]);
      key = (await drover.apiKeys.create('tracing')).key;
    } finally {
      await drover.close();
    }
    const server = await spawnDrover(['server'], cliEnv({
      DATABASE_URL: databaseUrl, REDIS_URL: redisUrlFor('redis'), DROVER_NAMESPACE: namespace, PORT: '0',
      OTEL_TRACES_EXPORTER: 'console', OTEL_SERVICE_NAME: 'api-under-test',
    }));
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const res = await http(`${server.url}/api/runs`, {
      method: 'POST', json: { workflow: 'traced' }, headers: { authorization: `Bearer ${key}`, traceparent: `00-${traceId}-b7ad6b7169203331-01` },
    });
    expect(res.status).toBe(201);
    // Stopping flushes the batched spans.
    expect(await server.stop()).toBe(0);
    const out = server.stdout();
    expect(out).toContain("name: 'drover.createRun'");
    expect(out).toContain(`traceId: '${traceId}'`);
    expect(out).toContain(`'drover.run.id': '${res.body.id}'`);
    expect(out).toContain("'service.name': 'api-under-test'");
    expect(out).toMatch(/name: 'pg\.query:/);
  });

  test('a tracing variable drover cannot honour stops it with one line', async () => {
    const result = await runCli(['server'], cliEnv({ DATABASE_URL: 'postgres://u@127.0.0.1:1/x', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }));
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^drover: OTEL_EXPORTER_OTLP_PROTOCOL: drover exports traces over http\/json/)]);
  });
});
