import { ROUTE_ACCESS } from '../src/http/access';
import { apiRoutes } from '../src/http/api-routes';
import { scheduleRoutes } from '../src/http/schedule-routes';
import type { Drover } from '../src/drover';

/** Every `/api` route has its scope in the one table: a route added without one fails here. */
describe('ROUTE_ACCESS', () => {
  it.each([
    ['apiRoutes', () => apiRoutes({} as Drover), ROUTE_ACCESS.api],
    ['scheduleRoutes', () => scheduleRoutes({} as Drover), ROUTE_ACCESS.schedules],
  ] as const)('lists every method and path %s serves, and nothing it does not', (_name, make, rules) => {
    // The router is only inspected, never called: no Drover is needed.
    const router = make() as unknown as { stack: Array<{ route?: { path: string; methods: Record<string, boolean>; stack: Array<{ name: string; method?: string }> } }> };
    const served = new Set<string>();
    const guarded = new Set<string>();
    for (const layer of router.stack) {
      if (!layer.route) continue;
      const handlers = layer.route.stack;
      // A route whose only handler is the access check is the table's guard, not the route itself.
      const isGuard = handlers.length === 1 && handlers[0].name === 'accessCheck';
      for (const method of Object.keys(layer.route.methods)) {
        if (method === '_all') continue;
        (isGuard ? guarded : served).add(`${method.toUpperCase()} ${layer.route.path}`);
      }
    }
    const table = new Set(rules.map((r: { method: string; path: string }) => `${r.method} ${r.path}`));
    expect([...served].sort()).toEqual([...table].sort());
    expect([...guarded].sort()).toEqual([...table].sort());
  });
});
