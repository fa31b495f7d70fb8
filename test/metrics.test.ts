import { Metrics } from '../src/telemetry/metrics';

// Metrics are injected: each Drover (and the workers it creates) counts into its own registry.
describe('metrics', () => {
  it('keeps two instances in one process apart', async () => {
    const a = new Metrics();
    const b = new Metrics({ processMetrics: false });
    a.runsCreated.inc(3);
    b.stepsFinished.inc({ status: 'failed', queue: 'q' });
    const removeSource = b.addQueueJobSource(async () => [{ queue: 'q', state: 'waiting', count: 7 }]);
    const textA = await a.registry.metrics();
    const textB = await b.registry.metrics();
    expect(textA).toMatch(/^drover_runs_created_total 3$/m);
    expect(textB).toMatch(/^drover_runs_created_total 0$/m);
    expect(textB).toMatch(/^drover_steps_finished_total\{status="failed",queue="q"\} 1$/m);
    expect(textA).not.toContain('status="failed"');
    expect(textB).toMatch(/^drover_queue_jobs\{queue="q",state="waiting"\} 7$/m);
    expect(textA).not.toContain('drover_queue_jobs{');
    // The process metrics keep their standard names.
    expect(textA).toMatch(/^process_cpu_seconds_total /m);
    expect(textA).toMatch(/^nodejs_heap_size_used_bytes /m);
    expect(textA).not.toContain('drover_process_');
    expect(textB).not.toContain('process_cpu_seconds_total');
    removeSource();
    expect(await b.registry.metrics()).not.toContain('drover_queue_jobs{');
  });
});
