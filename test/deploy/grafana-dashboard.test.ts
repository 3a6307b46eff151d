// The Grafana dashboard in deploy/grafana is built on metric names and labels edgeban exports:
// a renamed metric or label breaks this test, not the user's dashboard.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Histogram } from 'prom-client';
import { EdgebanMetrics } from '../../src/metrics/edgeban-metrics.ts';
import { REPO } from '../config/fixtures.ts';

interface Panel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

function expressions(panels: readonly Panel[]): Array<{ panel: string; expr: string }> {
  return panels.flatMap((p) => [...(p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr ?? '' })), ...expressions(p.panels ?? [])]);
}

/** Every series name edgeban's registry exports (histograms with their _bucket/_sum/_count), with its label names. */
function exported(): Map<string, Set<string>> {
  const metrics = new EdgebanMetrics({ activeClaims: () => [], targets: () => [] }, { processMetrics: false });
  const names = new Map<string, Set<string>>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const { name, labelNames } = metric as unknown as { name: string; labelNames: string[] };
    if (metric instanceof Histogram) {
      names.set(`${name}_bucket`, new Set([...labelNames, 'le']));
      names.set(`${name}_sum`, new Set(labelNames));
      names.set(`${name}_count`, new Set(labelNames));
    } else {
      names.set(name, new Set(labelNames));
    }
  }
  return names;
}

test('deploy/grafana/edgeban.json: every expression references only exported metrics, grouped by their labels', async () => {
  const dashboard = JSON.parse(readFileSync(path.join(REPO, 'deploy/grafana/edgeban.json'), 'utf8')) as { uid: string; title: string; panels: Panel[] };
  assert.equal(dashboard.uid, 'edgeban');
  const exprs = expressions(dashboard.panels);
  assert.ok(exprs.length >= 10, 'the dashboard has its panels');
  const names = exported();
  const used = new Set<string>();
  for (const { panel, expr } of exprs) {
    const referenced = expr.match(/\bedgeban_[a-z0-9_]+/g) ?? [];
    assert.ok(referenced.length > 0, `${panel}: ${expr} references no edgeban metric`);
    for (const name of referenced) {
      assert.ok(names.has(name), `${panel}: ${name} is not exported (exported: ${[...names.keys()].join(', ')})`);
      used.add(name);
    }
    // Labels grouped on or matched must exist on the metrics the expression reads.
    const labels = new Set(referenced.flatMap((n) => [...(names.get(n) ?? [])]));
    const grouped = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()));
    const matched = [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/(\w+)\s*[=!]~?/g)].map((x) => x[1]!));
    for (const label of [...grouped, ...matched]) assert.ok(labels.has(label), `${panel}: label ${label} is not on ${referenced.join(', ')}`);
  }
  for (const name of ['edgeban_bans_total', 'edgeban_unbans_total', 'edgeban_target_api_requests_total', 'edgeban_jail_running', 'edgeban_build_info']) {
    assert.ok(used.has(name) || used.has(`${name}_bucket`), `the dashboard shows ${name}`);
  }
});
