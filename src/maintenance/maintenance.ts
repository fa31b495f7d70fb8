import type { RunService } from '../runs/run-service';
import { Retention, type RetentionDeps, type RetentionOptions } from './retention';
import { ScheduleTick, type ScheduleTickOptions } from './schedule-tick';

/** Options of the time-based maintenance a server or worker runs. */
export interface MaintenanceOptions {
  /** The schedule tick; `false` turns it off in this process. */
  schedules?: false | ScheduleTickOptions;
  /** Retention; `false` turns it off in this process. */
  retention?: false | (RetentionOptions & {
    /** Time between retention passes. Default 60 000 ms (the first pass runs 1 s after start). */
    intervalMs?: number;
  });
}

/**
 * What runs on a timer besides the reconciler: the schedule tick (any number
 * of processes; each due tick is fired by one) and retention (one pass at a
 * time across processes, under an advisory lock). `drover server`,
 * `drover start` and workers run it; every part is safe to run everywhere.
 */
export class Maintenance {
  readonly tick?: ScheduleTick;
  readonly retention?: Retention;
  private timer?: NodeJS.Timeout;
  private pass?: Promise<unknown>;
  private stopped = false;

  constructor(private readonly deps: RetentionDeps & { runs: RunService }, private readonly options: MaintenanceOptions = {}) {
    if (options.schedules !== false) this.tick = new ScheduleTick(deps, options.schedules ?? {});
    if (options.retention !== false) this.retention = new Retention(deps, options.retention ?? {});
  }

  start(): void {
    this.tick?.start();
    if (!this.retention) return;
    const interval = (this.options.retention || {}).intervalMs ?? 60_000;
    const loop = () => {
      if (this.stopped) return;
      this.pass = this.retention!.prune()
        .catch((err) => this.deps.logger.warn({ err }, 'retention pass failed'))
        .finally(() => {
          if (this.stopped) return;
          this.timer = setTimeout(loop, interval);
          this.timer.unref();
        });
    };
    this.timer = setTimeout(loop, Math.min(interval, 1000));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all([this.tick?.stop(), this.pass]);
  }
}
