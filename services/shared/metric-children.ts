/**
 * perLabel memoizes make for each label value. Bound children (`metric.labels(...)`) made once per value spare every
 * observation prom-client's label checks and hashing, which ran on every request. Every label this is used for takes
 * a bounded set of values (operations, routes, outcomes, the models of registered providers), the same set the metric
 * itself keeps a series for, so the memo grows no further than the metric does.
 */
export function perLabel<T>(make: (value: string) => T): (value: string) => T {
  const made = new Map<string, T>();
  return (value) => {
    let child = made.get(value);
    if (child === undefined) {
      child = make(value);
      made.set(value, child);
    }
    return child;
  };
}
