import { ConfigError } from '../errors';

/** The standard OpenTelemetry variables drover reads (the OTLP exporter also reads its own `OTEL_EXPORTER_OTLP_*`). */
export const TRACING_VARIABLES = [
  'OTEL_SDK_DISABLED', 'OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_SERVICE_NAME', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG',
] as const;

/** Where spans go. */
export type TraceExporterKind = 'otlp' | 'console';

/** The samplers of `OTEL_TRACES_SAMPLER` drover supports (the specification's built-in ones). */
export const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** Tracing as the `OTEL_*` variables ask for it (absent: tracing is off). */
export interface TracingConfig {
  /** `OTEL_TRACES_EXPORTER` (comma list of `otlp`, `console`). Default `otlp` when an OTLP endpoint is set. */
  exporters: TraceExporterKind[];
  /** `OTEL_SERVICE_NAME`. Default: the command's (`drover-server`, `drover-worker`, `drover`). */
  serviceName?: string;
  /** `OTEL_TRACES_SAMPLER`. Default `parentbased_always_on`. */
  sampler: SamplerName;
  /** `OTEL_TRACES_SAMPLER_ARG` for the ratio samplers, 0 to 1. Default 1. */
  samplerRatio: number;
}

/**
 * Reads the standard OpenTelemetry variables. Tracing is off unless they turn
 * it on: `OTEL_TRACES_EXPORTER` names an exporter (`otlp` or `console`), or an
 * OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none` keep it off. Throws `ConfigError` for values drover
 * cannot honour (an unknown exporter or sampler, a protocol other than `http/json`).
 */
export function parseTracingConfig(get: (name: (typeof TRACING_VARIABLES)[number]) => string | undefined): TracingConfig | undefined {
  if (get('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const named = get('OTEL_TRACES_EXPORTER')?.split(',').map((e) => e.trim().toLowerCase()).filter(Boolean);
  const endpoint = get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? get('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (named?.includes('none')) {
    if (named.length > 1) throw new ConfigError(`OTEL_TRACES_EXPORTER: "none" cannot be combined with other exporters (got "${get('OTEL_TRACES_EXPORTER')}")`);
    return undefined;
  }
  const exporters = named ?? (endpoint ? ['otlp'] : []);
  if (exporters.length === 0) return undefined;
  for (const e of exporters) {
    if (e !== 'otlp' && e !== 'console') throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp, console or none (got "${e}")`);
  }
  const protocol = get('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? get('OTEL_EXPORTER_OTLP_PROTOCOL');
  if (exporters.includes('otlp') && protocol !== undefined && protocol !== 'http/json') {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_PROTOCOL: drover exports traces over http/json (OTLP/HTTP, port 4318); got "${protocol}"`);
  }
  for (const url of [get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'), get('OTEL_EXPORTER_OTLP_ENDPOINT')]) {
    if (url !== undefined && !/^https?:\/\/[^/\s]+/.test(url)) throw new ConfigError(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (got "${url}")`);
  }
  const sampler = (get('OTEL_TRACES_SAMPLER')?.toLowerCase() ?? 'parentbased_always_on') as SamplerName;
  if (!SAMPLERS.includes(sampler)) throw new ConfigError(`OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(', ')} (got "${get('OTEL_TRACES_SAMPLER')}")`);
  const arg = get('OTEL_TRACES_SAMPLER_ARG');
  const samplerRatio = arg === undefined ? 1 : Number(arg);
  if (!Number.isFinite(samplerRatio) || samplerRatio < 0 || samplerRatio > 1) throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1 (got "${arg}")`);
  return { exporters: exporters as TraceExporterKind[], serviceName: get('OTEL_SERVICE_NAME'), sampler, samplerRatio };
}
