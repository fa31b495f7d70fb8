import { z } from 'zod';
import { InvalidInputError } from '../src/errors';
import { startServer, type DroverServer } from '../src/http/server';
import { workflow } from '../src/workflows/builder';
import { resolveWorkflow } from '../src/workflows/definitions';
import { createEngine, type EngineHarness } from './helpers/engine';
import { describeEachBackend } from './helpers/env';
import { http } from './helpers/server-process';

const ORDER_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  properties: { items: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } }, required: ['sku', 'qty'] } } },
  required: ['items'],
};

function typedSignup() {
  const wf = workflow('signup', { input: z.object({ email: z.string().email(), plan: z.enum(['free', 'pro']).default('free') }) });
  wf.step('welcome', {}, ({ input }) => ({ to: input.email, plan: input.plan }));
  return wf;
}

describe('input schemas in definitions', () => {
  it('come from the zod schema (the input side) or are given directly, and are part of the version', () => {
    const schema = typedSignup().toDefinition().inputSchema as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(schema.properties)).toEqual(['email', 'plan']);
    expect(schema.required).toEqual(['email']);
    const plain = { name: 'order', steps: [{ name: 'a', processor: 'p' }] };
    const withSchema = resolveWorkflow({ ...plain, inputSchema: ORDER_SCHEMA });
    expect(withSchema.inputSchema).toEqual(ORDER_SCHEMA);
    expect(withSchema.version).not.toBe(resolveWorkflow(plain).version);
  });

  it('refuses a schema that is not a JSON Schema', () => {
    expect(() => resolveWorkflow({ name: 'order', inputSchema: { type: 'nope' }, steps: [{ name: 'a', processor: 'p' }] }))
      .toThrow(/^workflow "order": inputSchema is not a valid JSON Schema: schema is invalid: data\/type must be equal to one of the allowed values/);
    expect(() => resolveWorkflow({ name: 'order', inputSchema: [1], steps: [{ name: 'a', processor: 'p' }] })).toThrow('workflow "order": inputSchema');
  });
});

describeEachBackend('runs whose input does not match the schema', (backend) => {
  let engine: EngineHarness;
  let server: DroverServer;
  beforeAll(async () => {
    engine = await createEngine(backend);
    await engine.startWorker({
      workflows: [typedSignup(), { name: 'order', inputSchema: ORDER_SCHEMA, steps: [{ name: 'a', processor: 'order.a' }] }],
      processors: { 'order.a': async (ctx) => ({ lines: (ctx.input.items as unknown[]).length }) },
    });
    server = await startServer({ drover: engine.drover, port: 0, auth: false });
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it('createRun refuses them with invalid_input naming the path; matching ones run', async () => {
    const refused = await engine.drover.createRun({ workflow: 'order', input: { items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 0 }] } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidInputError);
    expect((refused as InvalidInputError).code).toBe('invalid_input');
    expect((refused as InvalidInputError).message).toBe('the input does not match the input schema of workflow "order": input.items[1].qty: must be >= 1');
    expect((refused as InvalidInputError).details).toEqual({ path: 'input.items[1].qty', message: 'must be >= 1' });
    const missing = await engine.drover.createRun({ workflow: 'signup', input: {} }).catch((e: InvalidInputError) => e.details);
    expect(missing).toEqual({ path: 'input.email', message: 'is required' });
    const email = await engine.drover.createRun({ workflow: 'signup', input: { email: 'not-an-address' } }).catch((e: InvalidInputError) => e.details);
    // zod writes both a format and the pattern it checks; Ajv reports the pattern.
    expect(email).toEqual({ path: 'input.email', message: expect.stringMatching(/^must match pattern/) });

    const batch = await engine.drover.createRuns([{ workflow: 'order', input: { items: 'x' } }, { workflow: 'order', input: { items: [] } }]);
    expect(batch.failed).toBe(1);
    expect(batch.items[0].error).toMatchObject({ code: 'invalid_input', details: { path: 'input.items', message: 'must be array' } });
    const ok = await engine.drover.waitForRun(batch.items[1].id!, { timeoutMs: 20_000 });
    expect(ok.output).toEqual({ a: { lines: 0 } });
    expect(await (await engine.drover.start('signup', { email: 'a@b.org' })).result({ timeoutMs: 20_000 })).toEqual({ welcome: { to: 'a@b.org', plan: 'free' } });
  });

  it('POST /api/runs answers 422 invalid_input; GET /api/workflows shows each schema', async () => {
    const res = await http(`${server.url}/api/runs`, { method: 'POST', json: { workflow: 'signup', input: { email: 'a@b.org', plan: 'gold' } } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('invalid_input');
    expect(res.body.error.details.path).toBe('input.plan');
    expect(res.body.error.message).toBe('the input does not match the input schema of workflow "signup": input.plan: must be equal to one of the allowed values');
    const list = await http(`${server.url}/api/workflows`);
    const byName = Object.fromEntries((list.body.items as Array<{ name: string; inputSchema: unknown }>).map((w) => [w.name, w.inputSchema]));
    expect(byName.order).toEqual(ORDER_SCHEMA);
    expect(byName.signup).toMatchObject({ type: 'object', required: ['email'] });
  });
});
