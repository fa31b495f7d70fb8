import { Graph, layout } from '@dagrejs/dagre';
import type { ResolvedStep } from '../types';

/** One node of a drawn DAG: a step with the state to show (absent on a workflow's definition). */
export interface DagStep {
  name: string;
  dependsOn: string[];
  status?: string;
  /** Where selecting the node leads (a run page's step panel); absent: not selectable. */
  href?: string;
  selected?: boolean;
}

const NODE_WIDTH = 168;
const NODE_HEIGHT = 46;

/** The steps of a definition as DAG nodes without state. */
export function definitionSteps(steps: ResolvedStep[]): DagStep[] {
  return steps.map((s) => ({ name: s.name, dependsOn: s.dependsOn }));
}

/** A step name shortened to fit its node. */
function fit(name: string, max = 22): string {
  return name.length > max ? `${name.slice(0, max - 1)}…` : name;
}

/**
 * A workflow's DAG as SVG, laid out by dagre (left to right). Each step is a
 * `<g data-step data-status>` (a link when selectable, so keyboard users tab
 * to it and press Enter) with its name and its state in text as well as colour.
 */
export function Dag({ steps, label }: { steps: DagStep[]; label: string }) {
  const g = new Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const s of steps) g.setNode(s.name, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const s of steps) for (const dep of s.dependsOn) g.setEdge(dep, s.name);
  layout(g);
  const graph = g.graph();
  const width = Math.ceil(graph.width ?? NODE_WIDTH);
  const height = Math.ceil(graph.height ?? NODE_HEIGHT);
  return (
    <svg class="dag" role="group" aria-label={label} viewBox={`0 0 ${width} ${height}`} width={width} height={height}>
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" class="dag-arrow" />
        </marker>
      </defs>
      {g.edges().map((e) => {
        const points = g.edge(e).points ?? [];
        const d = points.map((p: { x: number; y: number }, i: number) => `${i === 0 ? 'M' : 'L'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');
        return <path key={`${e.v}->${e.w}`} class="dag-edge" d={d} marker-end="url(#arrow)" />;
      })}
      {steps.map((s) => {
        const n = g.node(s.name);
        const x = n.x - NODE_WIDTH / 2;
        const y = n.y - NODE_HEIGHT / 2;
        const status = s.status ?? 'defined';
        const body = (
          <>
            <title>{s.status ? `${s.name}: ${s.status}` : s.name}</title>
            <rect class="dag-node" x={x} y={y} width={NODE_WIDTH} height={NODE_HEIGHT} rx="6" />
            <text class="dag-name" x={x + 10} y={y + (s.status ? 19 : 28)}>{fit(s.name)}</text>
            {s.status ? <text class="dag-status" x={x + 10} y={y + 36}>{s.status}</text> : null}
          </>
        );
        const cls = `dag-step status-${status}${s.selected ? ' selected' : ''}`;
        return s.href
          ? <a key={s.name} href={s.href} class={cls} data-step={s.name} data-status={status} aria-label={`${s.name}: ${status}`} aria-current={s.selected ? 'true' : undefined}>{body}</a>
          : <g key={s.name} class={cls} data-step={s.name} data-status={s.status ? status : undefined}>{body}</g>;
      })}
    </svg>
  );
}
