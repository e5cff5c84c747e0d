import { collectDefaultMetrics, type Registry } from "prom-client";

/**
 * PROMTOOL_REJECTED_DEFAULTS are prom-client's default metrics that break Prometheus' naming rules: gauges whose
 * names end in `_total`, which `promtool check metrics` refuses. Each has a twin without the suffix that stays
 * (nodejs_active_handles and so on), so nothing is lost.
 */
export const PROMTOOL_REJECTED_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
] as const;

/**
 * collectProcessMetrics adds the standard process_* and nodejs_* metrics (CPU, memory, file descriptors, event
 * loop lag, GC) to the registry a process serves. A process calls it once, from its command: the metrics describe
 * the process, not one service, and `infermesh dev` runs three services in one process.
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of PROMTOOL_REJECTED_DEFAULTS) registry.removeSingleMetric(name);
}
