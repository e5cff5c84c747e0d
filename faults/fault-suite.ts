import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { type CliCommand, compileCli } from "../bench/cli-command.js";
import { createPeerCalls } from "../services/shared/grpc/infer-client.js";
import { SILENCE_LIMIT_MS } from "../services/shared/link/link-protocol.js";
import { AGENT_RETURN_LIMIT_MS, type AgentReturn, type LinkProbe, watchAgentsReturn } from "./agent-return.js";
import { stopOnCtrlC, wholeFlag } from "./cli-flags.js";
import { deploymentMain } from "./deployment-suite.js";
import { type InjectedFault, injectFaults } from "./fault-injector.js";
import { FAULT_MODEL, type FaultMesh, startFaultMesh } from "./fault-mesh.js";
import { type FaultSummary, formatReport, summarize } from "./fault-report.js";
import { FAULT_KINDS, type FaultKind, isGatewayFault, type PlannedFault, planFaults, type Range } from "./fault-schedule.js";
import { attributeGatewayCuts } from "./gateway-cuts.js";
import { type RequestRecord, runLoad } from "./load-driver.js";
import { type Check, callerOf, checkMesh } from "./mesh-checks.js";
import type { MeshProcess } from "./mesh-process.js";
import { createRandom } from "./seeded-random.js";

/** FaultSuiteOptions configures one run of the fault suite. */
export interface FaultSuiteOptions {
  readonly seed: number;
  /** loadMs is how long clients send requests at least; they go on until the last fault has healed and settled. */
  readonly loadMs: number;
  readonly concurrency: number;
  readonly clientTimeoutMs: number;
  readonly agents: number;
  readonly heartbeatIntervalMs: number;
  readonly ttlMs: number;
  readonly streamShare: number;
  readonly tokens: Range;
  readonly tokensPerSecond: number;
  readonly kinds: readonly FaultKind[];
  readonly gapMs: Range;
  readonly killDownMs: Range;
  readonly agentStallMs: Range;
  readonly simStallMs: Range;
  readonly registryStallMs: Range;
  readonly gatewayStallMs: Range;
  readonly maxConcurrentFaults: number;
  /** settleMs is how long the load goes on after the last fault healed, so that recovery is measured too. */
  readonly settleMs: number;
  readonly logLevel: string;
  /** gatewayArgs and agentArgs are extra flags of those commands (a request deadline, a keepalive, ...). */
  readonly gatewayArgs: readonly string[];
  readonly agentArgs: readonly string[];
  /** runDir holds the database and the processes' logs; a fresh temporary folder when absent. */
  readonly runDir?: string;
  /**
   * compile runs the processes from the working tree compiled with tsc into runDir first, rather than from a fresh
   * dist/ or the sources through tsx: every start and restart then costs half the CPU, which a loaded machine needs.
   */
  readonly compile?: boolean;
  /** progress hears the live log: faults as they strike and heal, and the load's figures now and then. */
  readonly progress?: (line: string) => void;
  /** signal ends the load early (Ctrl-C); the mesh is still healed, checked and stopped. */
  readonly signal?: AbortSignal;
}

/**
 * FULL_FORM is `npm run faults`: 90 s of load by 24 clients, faults every 2-6 s, up to two at once (a gateway fault
 * alone: see planFaults).
 */
export const FULL_FORM: FaultSuiteOptions = Object.freeze({
  seed: 1,
  loadMs: 90_000,
  concurrency: 24,
  clientTimeoutMs: 20_000,
  agents: 3,
  heartbeatIntervalMs: 500,
  ttlMs: 1_500,
  streamShare: 0.6,
  tokens: [10, 40] as const,
  tokensPerSecond: 20,
  kinds: FAULT_KINDS,
  gapMs: [2_000, 6_000] as const,
  killDownMs: [500, 4_000] as const,
  agentStallMs: [1_000, 8_000] as const,
  simStallMs: [1_000, 6_000] as const,
  registryStallMs: [1_000, 5_000] as const,
  // Both sides of the link's silence limit: shorter stalls leave the agents' links up, longer ones make them dial again.
  gatewayStallMs: [1_000, 8_000] as const,
  maxConcurrentFaults: 2,
  settleMs: 3_000,
  logLevel: "info",
  // One key drives the whole load: the per-key limits would turn it into 429s, which measure nothing here.
  gatewayArgs: ["--rate-limit-rpm", "0", "--max-concurrent-streams", "0"],
  // 18 slots for 24 clients: a few requests always wait in an agent's queue, more while an agent is down, so faults
  // strike queued requests as well as running ones.
  agentArgs: ["--max-concurrency", "6"],
});

/**
 * SHORT_FORM is the CI form: every fault kind once in about 32 s of load by 16 clients. The gateway's two faults take
 * half of it, each alone with the agents' return after it.
 */
export const SHORT_FORM: FaultSuiteOptions = Object.freeze({
  ...FULL_FORM,
  loadMs: 32_000,
  concurrency: 16,
  gapMs: [1_400, 1_800] as const,
  killDownMs: [700, 1_500] as const,
  agentStallMs: [1_000, 2_500] as const,
  simStallMs: [1_000, 2_500] as const,
  // Longer than the TTL, so that the registry resumes with every heartbeat overdue.
  registryStallMs: [2_000, 2_500] as const,
  // Past the link's silence limit, so that the agents give up on their links to the frozen gateway and dial again.
  gatewayStallMs: [SILENCE_LIMIT_MS + 500, SILENCE_LIMIT_MS + 1_000] as const,
  settleMs: 2_000,
});

/** FaultSuiteResult is a finished run: its summary, the printable report, and the raw records. */
export interface FaultSuiteResult {
  readonly summary: FaultSummary;
  readonly report: string;
  readonly records: readonly RequestRecord[];
  readonly faults: readonly InjectedFault[];
  readonly runDir: string;
  readonly passed: boolean;
}

/** RESTART_ALLOWANCE_MS is how long a killed process may take to be back (tsx compiles the sources first). */
const RESTART_ALLOWANCE_MS = 3_000;
const PROGRESS_EVERY_MS = 5_000;
/** ERROR_PAUSE_MS is a client's pause after a failed request, as real clients back off, so fast failures stay bounded. */
const ERROR_PAUSE_MS = 100;
/** UNREACHABLE_PAUSE_MS is the pause after a request the gateway refused or cut: clients back off from a server that is down. */
const UNREACHABLE_PAUSE_MS = 500;

/**
 * runFaultSuite starts the mesh as real processes, drives the bounded load while the seeded schedule SIGKILLs and
 * SIGSTOPs agents, simulators, the registry and the gateway the agents are attached to, classifies every request,
 * times the agents' return after each gateway fault, checks that every process serves at the end, stops the mesh, and
 * returns the summary. It never throws for a failed invariant: summary.failures says so.
 */
export async function runFaultSuite(options: FaultSuiteOptions): Promise<FaultSuiteResult> {
  const runDir = options.runDir ?? mkdtempSync(join(tmpdir(), `infermesh-faults-seed${options.seed}-`));
  mkdirSync(runDir, { recursive: true });
  const say = options.progress ?? (() => {});
  const random = createRandom(options.seed);
  const tailMs = options.ttlMs + 1_000;
  let cli: CliCommand | undefined;
  if (options.compile) {
    say("compiling the working tree with tsc");
    cli = await compileCli(join(runDir, "build"));
  }
  say(`starting the mesh (logs in ${runDir})`);
  const mesh: FaultMesh = await startFaultMesh({
    ...(cli ? { cli } : {}),
    runDir,
    agents: options.agents,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    ttlMs: options.ttlMs,
    logLevel: options.logLevel,
    gatewayArgs: options.gatewayArgs,
    agentArgs: options.agentArgs,
    simArgs: [],
  });
  let records: RequestRecord[] = [];
  let faults: InjectedFault[] = [];
  let agentReturns: AgentReturn[] = [];
  let checks: Check[] = [];
  let endMs = 0;
  const peers = createPeerCalls({ meshToken: mesh.meshToken });
  try {
    await waitForProviders(mesh, options.agents);
    const probe: LinkProbe = { peers, gatewayGrpc: mesh.gatewayGrpc, caller: await callerOf(mesh) };
    const plan = planFaults(random.fork("schedule"), {
      agents: options.agents,
      kinds: options.kinds,
      startMs: 1_500,
      endMs: Math.max(options.loadMs - options.settleMs, 2_000),
      gapMs: options.gapMs,
      killDownMs: options.killDownMs,
      agentStallMs: options.agentStallMs,
      simStallMs: options.simStallMs,
      registryStallMs: options.registryStallMs,
      gatewayStallMs: options.gatewayStallMs,
      soloTailMs: AGENT_RETURN_LIMIT_MS,
      restartAllowanceMs: RESTART_ALLOWANCE_MS,
      maxConcurrent: options.maxConcurrentFaults,
    });
    const startedAt = Date.now();
    const now = () => Date.now() - startedAt;
    say(`mesh ready; ${plan.length} faults planned; load starts`);
    const processes = new Map<string, MeshProcess>(mesh.all().map((p) => [p.name, p]));
    let healedAtMs: number | undefined;
    // After a gateway fault every agent must be back on a link within AGENT_RETURN_LIMIT_MS, while the load goes on;
    // no other fault strikes until they are (see injectFaults), so that none hides whether they came back in time.
    const returns: AgentReturn[] = [];
    const agents = mesh.agents.map((agent, i) => ({
      name: agent.name,
      providerId: mesh.agentIds[i] as string,
      running: () => agent.state !== "exited",
    }));
    const onHealed = async (fault: InjectedFault & { readonly healedAtMs: number }) => {
      if (!isGatewayFault(fault.kind)) return;
      const back = await watchAgentsReturn(probe, fault, agents, now);
      returns.push(back);
      const each = back.agents.map((a) => `${a.name} ${a.backAfterMs === undefined ? "not back" : `${a.backAfterMs} ms`}`);
      say(`+${(now() / 1000).toFixed(1)}s fault #${fault.id} ${fault.kind}: agents back on a link: ${each.join(", ")}`);
    };
    const exclusive = (fault: PlannedFault) => isGatewayFault(fault.kind);
    const injecting = injectFaults(plan, { processes, now, onEvent: say, onHealed, exclusive }).then((done) => {
      healedAtMs = now();
      return done;
    });
    const progress = setInterval(() => say(`+${(now() / 1000).toFixed(0)}s load running`), PROGRESS_EVERY_MS);
    try {
      records = await runLoad({
        gatewayUrl: mesh.gatewayUrl,
        apiKey: mesh.apiKey,
        model: FAULT_MODEL,
        concurrency: options.concurrency,
        random: random.fork("load"),
        clientTimeoutMs: options.clientTimeoutMs,
        streamShare: options.streamShare,
        tokens: options.tokens,
        tokensPerSecond: options.tokensPerSecond,
        errorPauseMs: ERROR_PAUSE_MS,
        unreachablePauseMs: UNREACHABLE_PAUSE_MS,
        now,
        stopping: () =>
          options.signal?.aborted === true ||
          (now() >= options.loadMs && healedAtMs !== undefined && now() >= healedAtMs + options.settleMs),
        requestIdPrefix: `faults-${options.seed}-${startedAt.toString(36)}`,
      });
    } finally {
      clearInterval(progress);
    }
    faults = await injecting;
    agentReturns = returns.sort((a, b) => a.fault.id - b.fault.id);
    endMs = now();
    say(`load done: ${records.length} requests in ${(endMs / 1000).toFixed(1)} s; checking that every process serves`);
    checks = await checkMesh(mesh, now, probe);
  } finally {
    peers.close();
    await mesh.close();
  }
  records = attributeGatewayCuts(records, faults);
  const summary = summarize(records, faults, agentReturns, checks, mesh.crashes, tailMs, endMs);
  // Every request and fault, for diagnosis next to the processes' logs.
  writeFileSync(join(runDir, "requests.json"), JSON.stringify({ faults, records }, null, 1));
  const report = formatReport(summary, {
    seed: options.seed,
    concurrency: options.concurrency,
    loadMs: endMs,
    clientTimeoutMs: options.clientTimeoutMs,
    tailMs,
    mesh:
      `registry (heartbeat ${options.heartbeatIntervalMs} ms, TTL ${options.ttlMs} ms), gateway${fmtArgs(options.gatewayArgs)}, ` +
      `${options.agents} agents${fmtArgs(options.agentArgs)} attached to it, each with its own simulator; ` +
      `${Math.round(options.streamShare * 100)}% streamed, ${options.tokens[0]}-${options.tokens[1]} tokens at ${options.tokensPerSecond}/s; ` +
      `infermesh run from: ${mesh.cli.description}`,
    runDir,
  });
  return { summary, report, records, faults, runDir, passed: summary.failures.length === 0 };
}

/** removeRunDir deletes a run's folder (the test does so when the run passed). */
export function removeRunDir(runDir: string): void {
  rmSync(runDir, { recursive: true, force: true });
}

async function waitForProviders(mesh: FaultMesh, agents: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`${mesh.gatewayUrl}/v1/models`, { headers: { authorization: `Bearer ${mesh.apiKey}` } });
      const list = (await response.json()) as { data?: { id: string; owned_by: string }[] };
      const owners = list.data?.find((m) => m.id === FAULT_MODEL)?.owned_by.split(",") ?? [];
      if (owners.length >= agents) return;
    } catch {
      // The gateway may still be connecting to the registry.
    }
    if (Date.now() > deadline) throw new Error(`the gateway did not route to ${agents} agents within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function fmtArgs(args: readonly string[]): string {
  return args.length === 0 ? "" : ` (${args.join(" ")})`;
}

const USAGE = `usage: npm run faults -- [flags]

  --short                   the CI form: every fault kind once, ~${SHORT_FORM.loadMs / 1000} s of load by 16 clients
  --duration-ms MS          how long clients send requests at least (full form ${FULL_FORM.loadMs})
  --concurrency N           concurrent clients (full form ${FULL_FORM.concurrency})
  --seed N                  seed of the fault schedule and the request mix (default ${FULL_FORM.seed})
  --client-timeout-ms MS    a request still open after this is hung (default ${FULL_FORM.clientTimeoutMs})
  --faults LIST             fault kinds to draw, comma-separated (default ${FAULT_KINDS.join(",")})
  --agent-stall-ms MIN-MAX  how long a SIGSTOPped agent stays stopped
  --sim-stall-ms MIN-MAX    how long a SIGSTOPped simulator stays stopped
  --registry-stall-ms MIN-MAX how long a SIGSTOPped registry stays stopped
  --gateway-stall-ms MIN-MAX  how long a SIGSTOPped gateway stays stopped (the agents' links give up after ${SILENCE_LIMIT_MS} ms)
  --kill-down-ms MIN-MAX    how long a SIGKILLed process stays dead before its restart
  --gap-ms MIN-MAX          pause between two faults
  --gateway-arg FLAG=VALUE  an extra gateway flag, e.g. --gateway-arg=--request-timeout-ms=15000 (repeatable)
  --agent-arg FLAG=VALUE    an extra agent flag (repeatable)
  --log-level LEVEL         the processes' log level (default info); logs stay in the run folder
  --run-dir DIR             where the database and logs go (default: a new temporary folder)
  --compile                 run the working tree compiled with tsc into the run folder (faster starts and restarts)
  --deployment              the whole deployment instead (nginx, 2 gateways, 2 registries, PostgreSQL, Redis): see --deployment --help
`;

/** main runs the suite from the command line, prints the report, and exits 1 when an invariant failed. */
async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes("--deployment")) return deploymentMain(argv.filter((arg) => arg !== "--deployment"));
  const { values } = parseArgs({
    args: [...argv],
    options: {
      short: { type: "boolean" },
      "duration-ms": { type: "string" },
      concurrency: { type: "string" },
      seed: { type: "string" },
      "client-timeout-ms": { type: "string" },
      faults: { type: "string" },
      "agent-stall-ms": { type: "string" },
      "sim-stall-ms": { type: "string" },
      "registry-stall-ms": { type: "string" },
      "gateway-stall-ms": { type: "string" },
      "kill-down-ms": { type: "string" },
      "gap-ms": { type: "string" },
      "gateway-arg": { type: "string", multiple: true },
      "agent-arg": { type: "string", multiple: true },
      "log-level": { type: "string" },
      "run-dir": { type: "string" },
      compile: { type: "boolean" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const base = values.short ? SHORT_FORM : FULL_FORM;
  const range = (flag: string, value: string | undefined, fallback: Range): Range => {
    if (value === undefined) return fallback;
    const match = /^(\d+)(?:-(\d+))?$/.exec(value);
    const min = Number(match?.[1]);
    const max = Number(match?.[2] ?? match?.[1]);
    if (!match || max < min) throw new Error(`--${flag} expects MIN-MAX in milliseconds, got '${value}'`);
    return [min, max];
  };
  const kinds = values.faults === undefined ? base.kinds : values.faults.split(",").map((k) => k.trim());
  for (const kind of kinds)
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new Error(`--faults: unknown kind '${kind}' (${FAULT_KINDS.join(", ")})`);
  const signal = stopOnCtrlC("stopping the load; healing, checking and stopping the mesh");
  const splitArg = (arg: string) => {
    const at = arg.indexOf("=", 2);
    return at === -1 ? [arg] : [arg.slice(0, at), arg.slice(at + 1)];
  };
  const result = await runFaultSuite({
    ...base,
    seed: wholeFlag("seed", values.seed, base.seed),
    loadMs: wholeFlag("duration-ms", values["duration-ms"], base.loadMs, 1_000),
    concurrency: wholeFlag("concurrency", values.concurrency, base.concurrency, 1),
    clientTimeoutMs: wholeFlag("client-timeout-ms", values["client-timeout-ms"], base.clientTimeoutMs, 1_000),
    kinds: kinds as FaultKind[],
    agentStallMs: range("agent-stall-ms", values["agent-stall-ms"], base.agentStallMs),
    simStallMs: range("sim-stall-ms", values["sim-stall-ms"], base.simStallMs),
    registryStallMs: range("registry-stall-ms", values["registry-stall-ms"], base.registryStallMs),
    gatewayStallMs: range("gateway-stall-ms", values["gateway-stall-ms"], base.gatewayStallMs),
    killDownMs: range("kill-down-ms", values["kill-down-ms"], base.killDownMs),
    gapMs: range("gap-ms", values["gap-ms"], base.gapMs),
    gatewayArgs: [...base.gatewayArgs, ...(values["gateway-arg"] ?? []).flatMap(splitArg)],
    agentArgs: [...base.agentArgs, ...(values["agent-arg"] ?? []).flatMap(splitArg)],
    logLevel: values["log-level"] ?? base.logLevel,
    ...(values["run-dir"] === undefined ? {} : { runDir: values["run-dir"] }),
    compile: values.compile === true,
    progress: (line) => process.stderr.write(`# ${line}\n`),
    signal,
  });
  process.stdout.write(`${result.report}\n`);
  return result.passed ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`fault suite: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(2);
    },
  );
}
