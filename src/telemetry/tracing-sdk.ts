import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ConsoleSpanExporter, NodeTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler,
  type Sampler, type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { VERSION } from '../version';
import { Tracing } from './tracing';
import type { TracingConfig } from './tracing-config';

/** The sampler `OTEL_TRACES_SAMPLER` names. */
function samplerOf(config: TracingConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.samplerRatio);
  switch (config.sampler) {
    case 'always_on': return new AlwaysOnSampler();
    case 'always_off': return new AlwaysOffSampler();
    case 'traceidratio': return ratio;
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: ratio });
    default: return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * The Tracing the `OTEL_*` variables ask for (see `parseTracingConfig`):
 * batched export to the OTLP/HTTP endpoint (the exporter reads its standard
 * `OTEL_EXPORTER_OTLP_*` variables: endpoint, headers, timeout) and/or the console.
 */
export function createTracing(config: TracingConfig, defaultServiceName: string): Tracing {
  const spanProcessors: SpanProcessor[] = config.exporters.map((kind) => new BatchSpanProcessor(kind === 'otlp' ? new OTLPTraceExporter() : new ConsoleSpanExporter()));
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName ?? defaultServiceName, 'service.version': VERSION }),
    sampler: samplerOf(config),
    spanProcessors,
  });
  return new Tracing({ tracerProvider: provider, onClose: () => provider.shutdown() });
}
