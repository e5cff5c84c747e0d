/**
 * wholeFlag reads a whole-number flag of the fault suites' command lines: fallback when it is absent, and an error
 * naming the flag when it is not a whole number of at least min.
 */
export function wholeFlag(flag: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${flag} expects a whole number >= ${min}, got '${value}'`);
  return n;
}

/**
 * stopOnCtrlC is the signal a suite's run ends early on: the first Ctrl-C says what still happens and aborts it, so
 * that the run still heals, checks and stops what it started; a second one abandons the run at once.
 */
export function stopOnCtrlC(whatStillHappens: string): AbortSignal {
  const controller = new AbortController();
  process.once("SIGINT", () => {
    process.stderr.write(`${whatStillHappens} (Ctrl-C again to abandon)\n`);
    controller.abort();
    process.once("SIGINT", () => process.exit(130));
  });
  return controller.signal;
}
