import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { main } from '../src/cli/cli';
import { JOB_STATES } from '../src/telemetry/metrics';
import { ABANDON_WAIT_MS, DEFAULT_GRACE_PERIOD_MS } from '../src/worker/worker';

/**
 * The Kubernetes manifests in deploy/kubernetes/, checked offline against the
 * upstream JSON schemas kept in deploy/schemas/ (Kubernetes 1.32 strict
 * schemas, KEDA's ScaledObject CRD), then against what drover needs of them.
 */

const DEPLOY = path.join(__dirname, '..', 'deploy');
const MANIFESTS = path.join(DEPLOY, 'kubernetes');

/** The schema file of each apiVersion/kind the manifests use. */
const SCHEMA_FILES: Record<string, string> = {
  'v1/ConfigMap': 'configmap-v1.json',
  'v1/Secret': 'secret-v1.json',
  'v1/Service': 'service-v1.json',
  'v1/ServiceAccount': 'serviceaccount-v1.json',
  'apps/v1/Deployment': 'deployment-apps-v1.json',
  'batch/v1/Job': 'job-batch-v1.json',
  'policy/v1/PodDisruptionBudget': 'poddisruptionbudget-policy-v1.json',
  'keda.sh/v1alpha1/ScaledObject': 'scaledobject-keda-v1alpha1.json',
};

interface Manifest {
  file: string;
  doc: any;
}

function yamlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return yamlFiles(full);
    return /\.ya?ml$/.test(e.name) ? [full] : [];
  });
}

function loadManifests(): Manifest[] {
  return yamlFiles(MANIFESTS).flatMap((file) => parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return { file: path.relative(DEPLOY, file), doc: d.toJSON() };
  })).filter((m) => m.doc !== null);
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const validators = new Map<string, ValidateFunction>();

/** The schema errors of a manifest, as `path message` lines (empty: valid). */
function schemaErrors(doc: any): string[] {
  const key = `${doc?.apiVersion}/${doc?.kind}`;
  const file = SCHEMA_FILES[key];
  if (!file) return [`no schema kept for ${key}`];
  let validate = validators.get(key);
  if (!validate) {
    const schema = JSON.parse(fs.readFileSync(path.join(DEPLOY, 'schemas', file), 'utf8'));
    delete schema.$schema;
    validate = ajv.compile(schema);
    validators.set(key, validate);
  }
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : ''}`);
}

const manifests = loadManifests();
const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind);
const named = (kind: string, name: string) => {
  const found = byKind(kind).find((m) => m.doc.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return found.doc;
};
const podSpecs = () => [...byKind('Deployment'), ...byKind('Job')].map((m) => ({ file: m.file, name: m.doc.metadata.name, spec: m.doc.spec.template.spec }));

describe('the Kubernetes manifests', () => {
  test('every manifest is valid against its upstream schema', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(9);
    const failures = manifests.map((m) => ({ manifest: `${m.file} ${m.doc.kind}/${m.doc.metadata?.name}`, errors: schemaErrors(m.doc) }))
      .filter((f) => f.errors.length > 0);
    expect(failures).toEqual([]);
  });

  test('a broken manifest fails the schema check', () => {
    const worker = structuredClone(named('Deployment', 'drover-worker'));
    worker.spec.replicas = 'two';
    worker.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
    const errors = schemaErrors(worker);
    expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(/^\/spec\/replicas must be integer/), expect.stringContaining('(imagePullPolicyy)')]));

    const scaled = structuredClone(named('ScaledObject', 'drover-worker'));
    delete scaled.spec.scaleTargetRef;
    expect(schemaErrors(scaled)).toEqual(expect.arrayContaining([expect.stringMatching(/must have required property 'scaleTargetRef'/)]));

    const budget = structuredClone(named('PodDisruptionBudget', 'drover-worker'));
    budget.spec.maxUnavailable = { percent: 10 };
    expect(schemaErrors(budget).length).toBeGreaterThan(0);
  });

  test('the API server is probed on /ready and /health and has a Service', () => {
    const server = named('Deployment', 'drover-server');
    const [container] = server.spec.template.spec.containers;
    expect(container.command.slice(-1)).toEqual(['server']);
    expect(container.readinessProbe.httpGet).toMatchObject({ path: '/ready', port: 'http' });
    expect(container.livenessProbe.httpGet).toMatchObject({ path: '/health', port: 'http' });
    expect(container.ports).toEqual([expect.objectContaining({ name: 'http', containerPort: 3000 })]);
    const service = named('Service', 'drover-server');
    expect(service.spec.selector).toEqual(server.spec.selector.matchLabels);
    expect(service.spec.ports[0].targetPort).toBe('http');
    // The server must listen on the pod address, on the port the probes use.
    expect(named('ConfigMap', 'drover-config').data).toMatchObject({ HOST: '0.0.0.0', PORT: String(container.ports[0].containerPort) });
  });

  test("the workers' grace period covers drover's drain", () => {
    const worker = named('Deployment', 'drover-worker');
    const seconds = worker.spec.template.spec.terminationGracePeriodSeconds;
    // Kubernetes must not SIGKILL a worker that is still draining, nor wait far longer than the drain.
    expect(seconds * 1000).toBeGreaterThanOrEqual(DEFAULT_GRACE_PERIOD_MS + ABANDON_WAIT_MS + 5000);
    expect(seconds * 1000).toBeLessThanOrEqual(DEFAULT_GRACE_PERIOD_MS + ABANDON_WAIT_MS + 15_000);
    const [container] = worker.spec.template.spec.containers;
    expect(container.livenessProbe.httpGet).toMatchObject({ path: '/health', port: 'metrics' });
  });

  test('the commands are ones the drover CLI has, with options it accepts', async () => {
    const help = async (command: string) => {
      let out = '';
      await main(['node', 'drover', command, '--help'], { out: (s) => { out += s; }, err: (s) => { out += s; } });
      return out;
    };
    for (const { name, spec } of podSpecs()) {
      for (const container of spec.containers) {
        const [node, bin, command, ...args] = container.command as string[];
        expect({ name, node, bin }).toEqual({ name, node: 'node', bin: '/app/node_modules/drover/bin/drover.js' });
        const text = await help(command);
        expect(text).toContain(`Usage: drover ${command}`);
        for (const option of args.filter((a) => a.startsWith('--'))) expect({ command, option, known: text.includes(option) }).toEqual({ command, option, known: true });
      }
    }
    expect(podSpecs().map((p) => p.spec.containers[0].command[2]).sort()).toEqual(['migrate', 'server', 'worker']);
  });

  test('pods run as non-root on a read-only root file system with requests and limits', () => {
    for (const { name, spec } of podSpecs()) {
      expect({ name, runAsNonRoot: spec.securityContext?.runAsNonRoot, token: spec.automountServiceAccountToken }).toEqual({ name, runAsNonRoot: true, token: false });
      for (const c of spec.containers) {
        expect({ name, securityContext: c.securityContext }).toEqual({
          name, securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        });
        for (const kind of ['requests', 'limits']) expect({ name, kind, cpu: Boolean(c.resources?.[kind]?.cpu), memory: Boolean(c.resources?.[kind]?.memory) }).toEqual({ name, kind, cpu: true, memory: true });
        // Configuration and connection strings come from the ConfigMap and the Secret, never inline.
        expect({ name, env: c.env }).toEqual({ name, env: undefined });
        expect(c.envFrom).toEqual([{ configMapRef: { name: 'drover-config' } }, { secretRef: { name: 'drover-secrets' } }]);
      }
    }
  });

  test('no secret value is committed: only the example Secret, with placeholders', () => {
    const secrets = byKind('Secret');
    expect(secrets.map((s) => s.file)).toEqual([path.join('kubernetes', 'examples', 'secret.example.yaml')]);
    for (const value of Object.values<string>(secrets[0].doc.stringData)) expect(value).toMatch(/USER|PASSWORD|HOST/);
    expect(secrets[0].doc.data).toBeUndefined();
  });

  test('the disruption budgets select the server and worker pods', () => {
    for (const name of ['drover-server', 'drover-worker']) {
      const labels = named('Deployment', name).spec.template.metadata.labels;
      const selector = named('PodDisruptionBudget', name).spec.selector.matchLabels;
      for (const [k, v] of Object.entries(selector)) expect(labels[k]).toBe(v);
    }
  });

  test('KEDA scales the worker Deployment on drover_queue_jobs through Prometheus', () => {
    const scaled = named('ScaledObject', 'drover-worker');
    expect(scaled.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'drover-worker' });
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(scaled.spec.maxReplicaCount).toBeGreaterThan(scaled.spec.minReplicaCount);
    const [trigger] = scaled.spec.triggers;
    expect(trigger.type).toBe('prometheus');
    // What KEDA's Prometheus scaler requires (its CRD leaves trigger metadata free-form).
    expect(Object.keys(trigger.metadata)).toEqual(expect.arrayContaining(['serverAddress', 'query', 'threshold']));
    expect(Number(trigger.metadata.threshold)).toBeGreaterThan(0);
    expect(trigger.metadata.query).toContain('drover_queue_jobs');
    const states = /state=~"([^"]+)"/.exec(trigger.metadata.query)![1].split('|');
    for (const state of states) expect(JOB_STATES).toContain(state);
    // A fallback needs AverageValue (KEDA refuses it otherwise).
    if (scaled.spec.fallback) expect(trigger.metricType).toBe('AverageValue');
  });
});
