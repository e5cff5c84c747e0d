import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Agent } from "undici";
import { type CliCommand, compileCli } from "../bench/cli-command.js";
import { percentiles } from "../bench/latency-percentiles.js";
import { DEFAULT_USAGE_FLUSH_MS } from "../services/gateway/gateway-options.js";
import { SILENCE_LIMIT_MS } from "../services/shared/link/link-protocol.js";
import { waitFor } from "../test/support/wait-for.js";
import { stopOnCtrlC, wholeFlag } from "./cli-flags.js";
import {
  agentLinks,
  checkGatewaysServe,
  checkRateLimit,
  checkStreamLimit,
  everyoneOnline,
  tallyUsage,
  type UsageTally,
} from "./deployment-checks.js";
import { type Deployment, startDeployment } from "./deployment-mesh.js";
import { type Departure, type ReplicaWatch, watchReplica } from "./deployment-watch.js";
import { FAULT_MODEL } from "./fault-mesh.js";
import type { Range } from "./fault-schedule.js";
import { attributeConnectionCuts, GATEWAY_CUT_SLACK_MS, GATEWAY_KILLED } from "./gateway-cuts.js";
import { type RequestRecord, runLoad } from "./load-driver.js";
import type { Check } from "./mesh-checks.js";
import type { MeshProcess } from "./mesh-process.js";
import { createRandom } from "./seeded-random.js";

/**
 * DeploymentTarget is what a deployment fault strikes: one gateway, one registry replica, Redis, or nginx (master
 * and workers), the load balancer every client and agent goes through.
 */
export type DeploymentTarget = "gateway" | "registry" | "redis" | "nginx";
/** DEPLOYMENT_TARGETS are struck in this order, each SIGKILLed and then SIGSTOPped. */
export const DEPLOYMENT_TARGETS: readonly DeploymentTarget[] = ["gateway", "registry", "redis", "nginx"];

/** DeploymentSuiteOptions configure one run of the deployment under faults. */
export interface DeploymentSuiteOptions {
  readonly seed: number;
  /** clients is the number of concurrent load clients through nginx, each with a key of its own. */
  readonly clients: number;
  readonly clientTimeoutMs: number;
  readonly agents: number;
  readonly heartbeatIntervalMs: number;
  readonly ttlMs: number;
  readonly streamShare: number;
  readonly tokens: Range;
  readonly tokensPerSecond: number;
  readonly targets: readonly DeploymentTarget[];
  /** downMs is how long a killed target stays dead before its restart, and a stopped one stays stopped. */
  readonly downMs: number;
  /** leadMs is the load before each fault strikes, settleMs the load after the deployment recovered from it. */
  readonly leadMs: number;
  readonly settleMs: number;
  /** recoveryLimitMs bounds the wait for the deployment to be whole again after a fault healed. */
  readonly recoveryLimitMs: number;
  /** rateLimitRpm and maxStreams are the gateways' per-key limits, which the checks spend after the faults. */
  readonly rateLimitRpm: number;
  readonly maxStreams: number;
  readonly logLevel: string;
  readonly runDir?: string;
  readonly compile?: boolean;
  readonly progress?: (line: string) => void;
  readonly signal?: AbortSignal;
}

/**
 * DEPLOYMENT_FULL_FORM is `npm run faults -- --deployment`: each target SIGKILLed and SIGSTOPped for 10 s in turn,
 * under the load of 8 clients (a gateway fault strikes the gateway holding the most agents' links, a replica fault
 * the replica that gateway's link uses). The TTL (6 s, twelve heartbeats) is long enough for a gateway to move off a
 * dead or frozen replica and for an agent whose link went silent (3.5 s) to attach elsewhere through nginx on its
 * first dial, and short enough that a provider really gone leaves the routes within seconds. Redis and a replica
 * are down longer than the TTL, so that shared presence has to carry the providers over the gap. An agent whose
 * first dial lands on a frozen gateway (nginx cannot tell it from a live one) does not make it within the TTL: the
 * report shows those expiries. nginx's faults cut every client and every agent off the mesh at once: requests in flight
 * through it break, new ones are refused while it is dead or wait while it is frozen, and the agents, their links
 * broken or silent, dial it again within their reconnect backoff (capped at 3 s) once it is back; down longer than
 * the TTL, it takes the providers offline until they do.
 */
export const DEPLOYMENT_FULL_FORM: DeploymentSuiteOptions = Object.freeze({
  seed: 1,
  clients: 8,
  clientTimeoutMs: 30_000,
  agents: 3,
  heartbeatIntervalMs: 500,
  ttlMs: 6_000,
  streamShare: 0.5,
  tokens: [10, 40] as const,
  tokensPerSecond: 20,
  targets: DEPLOYMENT_TARGETS,
  downMs: 10_000,
  leadMs: 3_000,
  settleMs: 3_000,
  recoveryLimitMs: 20_000,
  rateLimitRpm: 300,
  maxStreams: 2,
  logLevel: "info",
});

/** DEPLOYMENT_SHORT_FORM is the test's form: the same faults (nginx's too), 5 s each, by 6 clients. */
export const DEPLOYMENT_SHORT_FORM: DeploymentSuiteOptions = Object.freeze({
  ...DEPLOYMENT_FULL_FORM,
  clients: 6,
  downMs: 5_000,
  leadMs: 1_500,
  settleMs: 1_500,
  rateLimitRpm: 120,
});

/** Phase is one fault of the run and the load around it: from its lead-in to the end of its settling. */
export interface Phase {
  readonly label: string;
  readonly target: DeploymentTarget;
  readonly kind: "kill" | "stop";
  readonly fromMs: number;
  readonly injectedAtMs: number;
  /** goneAtMs is, after a SIGKILL, when the process had exited: until then it could still take a request. */
  readonly goneAtMs: number | undefined;
  readonly healedAtMs: number | undefined;
  /** recoveredAtMs is when both replicas listed every agent online and the gateways held one link per agent. */
  readonly recoveredAtMs: number | undefined;
  /**
   * agentsBackAfterMs is, after a gateway's or nginx's fault, how long after the signal every agent was attached to
   * a serving gateway (after nginx's: attached anew through it); agentsBackAfterHealMs the same from the restart or
   * SIGCONT, undefined when they were back before it (on the other gateway).
   */
  readonly agentsBackAfterMs: number | undefined;
  readonly agentsBackAfterHealMs: number | undefined;
  /** moves counts, per gateway, its link's moves from one registry replica to the other during the phase. */
  readonly moves: readonly number[];
  readonly toMs: number;
  readonly note: string;
}

/** PhaseFigures are the requests that started during one phase (or before the first: "calm"). */
export interface PhaseFigures {
  readonly label: string;
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  /** cut are the failures put down to a gateway's or nginx's death: in flight through it when it died, or refused while it was dead. */
  readonly cut: number;
  readonly headP50Ms: number | null;
  readonly headP99Ms: number | null;
  readonly totalP50Ms: number | null;
  readonly totalP99Ms: number | null;
  readonly totalMaxMs: number | null;
}

/** DeploymentResult is a finished run. */
export interface DeploymentResult {
  readonly phases: readonly Phase[];
  readonly figures: readonly PhaseFigures[];
  readonly records: readonly RequestRecord[];
  readonly usage: UsageTally | undefined;
  readonly departures: readonly Departure[];
  readonly checks: readonly Check[];
  readonly report: string;
  readonly runDir: string;
  readonly passed: boolean;
}

const POLL_MS = 100;
const PROGRESS_EVERY_MS = 5_000;
const ERROR_PAUSE_MS = 100;
const UNREACHABLE_PAUSE_MS = 500;

/**
 * runDeploymentSuite starts the whole deployment, drives the load through nginx while it SIGKILLs and then SIGSTOPs
 * one gateway, one registry replica, Redis and nginx in turn (each alone, the deployment whole again before the next),
 * checks every request, the usage rows in PostgreSQL, the limits and the presence afterwards, and stops everything.
 * It never throws for a failed invariant: checks and passed say so.
 */
export async function runDeploymentSuite(options: DeploymentSuiteOptions): Promise<DeploymentResult> {
  const runDir = options.runDir ?? mkdtempSync(join(tmpdir(), `infermesh-deployment-seed${options.seed}-`));
  mkdirSync(runDir, { recursive: true });
  const say = options.progress ?? (() => {});
  let cli: CliCommand | undefined;
  if (options.compile) {
    say("compiling the working tree with tsc");
    cli = await compileCli(join(runDir, "build"));
  }
  say(`starting PostgreSQL, Redis, 2 registries, 2 gateways, nginx, ${options.agents} agents and simulators (logs in ${runDir})`);
  const deployment = await startDeployment({
    ...(cli ? { cli } : {}),
    runDir,
    agents: options.agents,
    clients: options.clients,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    ttlMs: options.ttlMs,
    logLevel: options.logLevel,
    gatewayArgs: ["--rate-limit-rpm", String(options.rateLimitRpm), "--max-concurrent-streams", String(options.maxStreams)],
    agentArgs: ["--max-concurrency", "6"],
  });
  const dispatcher = new Agent({ connect: { ca: deployment.ca } });
  const startedAt = Date.now();
  const now = () => Date.now() - startedAt;
  const watches = deployment.registryUrls.map((url, i) => watchReplica(`registry-${i + 1}`, url, deployment.meshToken, now));
  const phases: Phase[] = [];
  const checks: Check[] = [];
  let records: RequestRecord[] = [];
  let usage: UsageTally | undefined;
  try {
    await waitFor("every agent online on both replicas, one link each", () => whole(deployment, watches), 60_000, POLL_MS);
    say("deployment ready; load starts");
    let done = false;
    const progress = setInterval(() => say(`+${(now() / 1000).toFixed(0)}s load running`), PROGRESS_EVERY_MS);
    const loading = runLoad({
      gatewayUrl: deployment.url,
      apiKey: deployment.keys.load[0] as string,
      apiKeys: deployment.keys.load,
      ca: deployment.ca,
      model: FAULT_MODEL,
      concurrency: options.clients,
      random: createRandom(options.seed).fork("load"),
      clientTimeoutMs: options.clientTimeoutMs,
      streamShare: options.streamShare,
      tokens: options.tokens,
      tokensPerSecond: options.tokensPerSecond,
      errorPauseMs: ERROR_PAUSE_MS,
      unreachablePauseMs: UNREACHABLE_PAUSE_MS,
      now,
      stopping: () => done || options.signal?.aborted === true,
      requestIdPrefix: `deployment-${options.seed}-${startedAt.toString(36)}`,
    }).finally(() => clearInterval(progress));
    try {
      for (const target of options.targets) {
        for (const kind of ["kill", "stop"] as const) {
          if (options.signal?.aborted) break;
          phases.push(await strike(deployment, watches, target, kind, options, now, say));
        }
      }
    } finally {
      done = true;
      records = await loading;
    }
    say(`load done: ${records.length} requests; checking`);
    records = attributeNginxCuts(attributeKills(records, phases), phases);
    checks.push(...checkRequests(records, phases));
    const succeeded = records.filter((r) => r.outcome === "succeeded");
    usage = await tallyUsage(
      deployment,
      succeeded.map((r) => r.maxTokens),
    );
    const failedWithHead = records.filter((r) => r.outcome !== "succeeded" && r.status === 200).length;
    checks.push(...usageCheck(usage, failedWithHead + answeredAsNginxDied(records, phases), successesAtRisk(records, phases)));
    checks.push(departuresCheck("no provider went offline during the registry and Redis faults", watches, phases, ["registry", "redis"]));
    // A departure outside every phase counts with the gateway faults: none should take a provider off either.
    // Reported, not promised: an agent whose re-dial lands on a frozen gateway stays away until it wakes.
    checks.push({ ...departuresCheck("no provider went offline during the gateway faults", watches, phases, ["gateway"]), reported: true });
    checks.push({
      name: "both replicas list every agent online",
      ok: await waitFor("every agent online", () => everyoneOnline(watches, deployment.agentIds), 10_000, POLL_MS).then(
        () => true,
        () => false,
      ),
      detail: watches.map((w) => `${w.replica}: ${[...w.online()].sort().join(", ") || "none"}`).join("; "),
    });
    checks.push(...(await checkGatewaysServe(deployment)));
    checks.push(await checkRateLimit(deployment, dispatcher, options.rateLimitRpm));
    checks.push(await checkStreamLimit(deployment, dispatcher, options.maxStreams));
    checks.push({
      name: "no process exited by itself",
      ok: deployment.crashes.length === 0,
      detail: deployment.crashes.map((c) => `${c.name} code ${c.code} signal ${c.signal}`).join("; ") || "none",
    });
    for (const phase of phases) {
      checks.push({
        name: `${phase.label}: the deployment recovered`,
        ok: phase.recoveredAtMs !== undefined,
        detail:
          phase.recoveredAtMs === undefined
            ? `not whole within ${options.recoveryLimitMs} ms of healing (${phase.note})`
            : `whole ${phase.recoveredAtMs - (phase.healedAtMs ?? phase.injectedAtMs)} ms after healing`,
      });
    }
  } finally {
    for (const watch of watches) watch.close();
    await dispatcher.close();
    await deployment.close();
  }
  const departures = watches.flatMap((w) => w.departures);
  const figures = phaseFigures(records, phases);
  writeFileSync(join(runDir, "requests.json"), JSON.stringify({ phases, departures, records }, null, 1));
  const passed = checks.every((c) => c.ok || c.reported);
  const report = formatDeploymentReport({ options, phases, figures, usage, departures, checks, runDir, passed, cli: deployment.cli });
  return { phases, figures, records, usage, departures, checks, report, runDir, passed };
}

/** whole tells whether both replicas list every agent online and the live gateways hold exactly one link per agent. */
async function whole(deployment: Deployment, watches: readonly ReplicaWatch[]): Promise<boolean> {
  if (!everyoneOnline(watches, deployment.agentIds)) return false;
  const links = await agentLinks(deployment);
  return links.every((n) => n !== undefined) && links.reduce((a: number, b) => a + (b ?? 0), 0) === deployment.agentIds.length;
}

/** describeState says what each replica lists online and how many links each gateway holds, for the report. */
async function describeState(deployment: Deployment, watches: readonly ReplicaWatch[]): Promise<string> {
  const links = await agentLinks(deployment);
  const online = watches.map((w) => `${w.replica} lists ${[...w.online()].sort().join(",") || "none"}`);
  return `${online.join("; ")}; links ${links.map((n, i) => `gateway-${i + 1}: ${n ?? "no answer"}`).join(", ")}`;
}

/** replicaInUse is the registry URL gateway i's link last connected its watch to, from the gateway's log. */
function replicaInUse(deployment: Deployment, i: number): string | undefined {
  let text = "";
  try {
    text = readFileSync(join(deployment.runDir, `gateway-${i + 1}.log`), "utf8");
  } catch {
    return undefined;
  }
  let url: string | undefined;
  for (const line of text.split("\n")) {
    if (!line.includes("registry watch connected")) continue;
    try {
      url = (JSON.parse(line) as { registry?: string }).registry ?? url;
    } catch {
      // A line cut short by a kill.
    }
  }
  return url;
}

/** movesOf counts gateway i's moves from one registry replica to another, from its log. */
function movesOf(deployment: Deployment, i: number): number {
  try {
    return (
      readFileSync(join(deployment.runDir, `gateway-${i + 1}.log`), "utf8").split("registry replica unreachable; moving to").length - 1
    );
  } catch {
    return 0;
  }
}

/** FaultHandle strikes one target and heals it: the same four moves whatever the process. */
interface FaultHandle {
  /** kill SIGKILLs the target and resolves once it is gone (for nginx: master and workers, its port closed). */
  kill(): Promise<void>;
  /** restart starts it again as before (same ports, same configuration) and says how, for the report. */
  restart(): Promise<string>;
  pause(): void;
  resume(): void;
}

/** processHandle strikes one of the deployment's infermesh processes. */
function processHandle(victim: MeshProcess): FaultHandle {
  return {
    kill: async () => {
      victim.kill();
      await victim.exited;
    },
    restart: async () => {
      await victim.start();
      return `restarted as pid ${victim.pid}`;
    },
    pause: () => victim.stop(),
    resume: () => victim.resume(),
  };
}

/** faultHandle is the handle on a target; index picks the gateway or replica. */
function faultHandle(deployment: Deployment, target: DeploymentTarget, index: number): FaultHandle {
  switch (target) {
    case "gateway":
      return processHandle(deployment.gateways[index] as MeshProcess);
    case "registry":
      return processHandle(deployment.registries[index] as MeshProcess);
    case "redis":
      return {
        kill: () => deployment.redis.kill(),
        restart: async () => {
          await deployment.redis.restart();
          return "restarted, empty";
        },
        pause: () => deployment.redis.pause(),
        resume: () => deployment.redis.resume(),
      };
    case "nginx":
      return {
        kill: () => deployment.nginx.kill("SIGKILL"),
        restart: async () => {
          await deployment.nginx.restart();
          return `restarted as pid ${deployment.nginx.pid} on port ${deployment.nginx.port}`;
        },
        pause: () => deployment.nginx.pause(),
        resume: () => deployment.nginx.resume(),
      };
  }
}

/** attachCounts are how many times each agent logged that it attached to the mesh (after its first, and after a loss). */
function attachCounts(deployment: Deployment): number[] {
  return deployment.agentIds.map((_, i) => {
    try {
      return readFileSync(join(deployment.runDir, `agent-${i + 1}.log`), "utf8").split("attached to the mesh").length - 1;
    } catch {
      return 0;
    }
  });
}

/**
 * agentsBackCondition tells when the agents are back after a fault. After a gateway's, every agent's link is on a
 * gateway that serves (the other one, or the one that resumed). After nginx's, every agent attached anew through it
 * (each link it carried broke with it, or went silent while it was frozen) and the gateways hold one link per agent.
 */
function agentsBackCondition(deployment: Deployment, target: DeploymentTarget, busiest: number): (() => Promise<boolean>) | undefined {
  const total = (links: readonly (number | undefined)[]) => links.reduce((a: number, b) => a + (b ?? 0), 0);
  const agents = deployment.agentIds.length;
  if (target === "gateway") {
    const victim = deployment.gateways[busiest];
    return async () => {
      const links = await agentLinks(deployment);
      return links[busiest] === undefined || victim?.state !== "running" ? links[1 - busiest] === agents : total(links) === agents;
    };
  }
  if (target === "nginx") {
    const before = attachCounts(deployment);
    return async () => {
      if (!attachCounts(deployment).every((n, i) => n > (before[i] ?? 0))) return false;
      const links = await agentLinks(deployment);
      return links.every((n) => n !== undefined) && total(links) === agents;
    };
  }
  return undefined;
}

/** strike runs one phase: the lead-in, the fault, its healing, the wait for recovery, and the settling. */
async function strike(
  deployment: Deployment,
  watches: readonly ReplicaWatch[],
  target: DeploymentTarget,
  kind: "kill" | "stop",
  options: DeploymentSuiteOptions,
  now: () => number,
  say: (line: string) => void,
): Promise<Phase> {
  // The gateway holding the most agents' links, and the replica its registry link uses now (as its log says), so
  // that each fault strikes the links and the heartbeats it can: after a gateway fault the agents are all on the other.
  const links = await agentLinks(deployment);
  const busiest = (links[1] ?? 0) > (links[0] ?? 0) ? 1 : 0;
  const inUse = deployment.registryUrls.indexOf(replicaInUse(deployment, busiest) ?? "");
  const replica = inUse === -1 ? busiest : inUse;
  const index = target === "registry" ? replica : busiest;
  const name = target === "redis" || target === "nginx" ? target : `${target}-${index + 1}`;
  const label = `${name} ${kind === "kill" ? "SIGKILL" : "SIGSTOP"}`;
  const log = (text: string) => say(`+${(now() / 1000).toFixed(1)}s ${label}: ${text}`);
  const fromMs = now();
  await sleep(options.leadMs);
  const handle = faultHandle(deployment, target, index);
  const movesBefore = deployment.gateways.map((_, i) => movesOf(deployment, i));
  const backCondition = agentsBackCondition(deployment, target, busiest);
  const injectedAtMs = now();
  let agentsBackAtMs: number | undefined;
  const agentsBack = backCondition
    ? waitFor("the agents to be attached again", backCondition, options.downMs + options.recoveryLimitMs, POLL_MS).then(
        () => {
          agentsBackAtMs = now();
        },
        () => {},
      )
    : Promise.resolve();
  let healedAtMs: number | undefined;
  let goneAtMs: number | undefined;
  let note = "";
  try {
    if (kind === "kill") {
      await handle.kill();
      goneAtMs = now();
      log(`SIGKILL; exited ${goneAtMs - injectedAtMs} ms later`);
      await sleep(Math.max(0, options.downMs - (goneAtMs - injectedAtMs)));
      note = await handle.restart();
    } else {
      handle.pause();
      log("SIGSTOP");
      await sleep(options.downMs);
      handle.resume();
      note = "continued";
    }
    healedAtMs = now();
    log(note);
  } catch (error) {
    note = `could not heal: ${(error as Error).message}`;
    log(note);
  }
  await agentsBack;
  const agentsBackAfterMs = agentsBackAtMs === undefined ? undefined : agentsBackAtMs - injectedAtMs;
  const agentsBackAfterHealMs =
    agentsBackAtMs === undefined || healedAtMs === undefined || agentsBackAtMs < healedAtMs ? undefined : agentsBackAtMs - healedAtMs;
  if (agentsBackAfterMs !== undefined)
    log(`every agent attached again ${agentsBackAfterMs} ms after the signal${afterHealing(agentsBackAfterHealMs)}`);
  let recoveredAtMs: number | undefined;
  if (healedAtMs !== undefined) {
    recoveredAtMs = await waitFor("the deployment to be whole", () => whole(deployment, watches), options.recoveryLimitMs, POLL_MS).then(
      () => now(),
      () => undefined,
    );
  }
  const moved = deployment.gateways.map((_, i) => movesOf(deployment, i) - (movesBefore[i] ?? 0));
  if (target === "registry") note += `; gateways' moves to the other replica: ${moved.map((n, i) => `gateway-${i + 1} ${n}`).join(", ")}`;
  const state = await describeState(deployment, watches);
  log(recoveredAtMs === undefined ? `NOT recovered: ${state}` : `whole again after ${recoveredAtMs - (healedAtMs ?? 0)} ms`);
  if (recoveredAtMs === undefined) note += `; at the deadline: ${state}`;
  await sleep(options.settleMs);
  const departed = watches.flatMap((w) => w.departures).filter((d) => d.atMs >= fromMs).length;
  if (departed > 0) note += `; ${departed} departures of providers from a replica's view`;
  return {
    label,
    target,
    kind,
    fromMs,
    injectedAtMs,
    goneAtMs,
    healedAtMs,
    recoveredAtMs,
    agentsBackAfterMs,
    agentsBackAfterHealMs,
    moves: moved,
    toMs: now(),
    note,
  };
}

function afterHealing(ms: number | undefined): string {
  return ms === undefined ? "" : ` (${ms} ms after healing)`;
}

/**
 * attributeKills re-reads the requests that failed while in flight when a gateway was SIGKILLed (sent before the
 * process had exited, still open when the signal went): nginx answers those with its own 502 (the gateway died
 * before the head) or cuts the connection (after it), or the surviving gateway reports the agent's link lost with an
 * error frame or OpenAI's envelope, and the client sees the failure at once. A gateway SIGSTOPped for longer than the
 * links' silence limit (3.5 s) is dead to its agents just the same: they leave its links, and the requests on them
 * (in flight when it stopped, or handed to it while it was stopped: its kernel still accepts connections) end,
 * cleanly, when it wakes. Such a request is a clean error labelled "gateway killed";
 * any other failure stays as it was classified.
 */
export function attributeKills(records: readonly RequestRecord[], phases: readonly Phase[]): RequestRecord[] {
  const kills = phases
    .filter((p) => p.target === "gateway" && (p.kind === "kill" || (p.healedAtMs ?? p.toMs) - p.injectedAtMs > SILENCE_LIMIT_MS))
    .map((p) => ({ fromMs: p.injectedAtMs, goneMs: p.kind === "kill" ? (p.goneAtMs ?? p.injectedAtMs) : (p.healedAtMs ?? p.toMs) }));
  return records.map((record) => {
    if (record.outcome === "succeeded" || record.outcome === "hung") return record;
    const inFlight = kills.some((kill) => record.startMs <= kill.goneMs && record.endMs >= kill.fromMs);
    if (!inFlight) return record;
    const cut = record.ending === "reset" || record.status === 502 || record.outcome === "clean_error";
    if (!cut) return record;
    const how = record.ending === "reset" ? (record.failure?.split(" ")[0] ?? "reset") : `HTTP ${record.status}`;
    return {
      ...record,
      outcome: "clean_error",
      error: `${GATEWAY_KILLED}: ${how}`,
      detail: `in flight on the killed or stopped gateway (${record.detail})`,
    };
  });
}

/** NGINX_KILLED opens the clean-error label of a request whose connection broke with nginx, or that it refused while dead. */
export const NGINX_KILLED = "nginx killed";

/**
 * attributeNginxCuts re-reads the requests whose connection broke while nginx was dead: in flight through it when it
 * was SIGKILLed (reset, whether or not a head had come), or refused until it was up again, plus the slack a client
 * needs to read the close of a kept-alive connection to the dead one before sending on it. Such a request is a clean
 * error labelled "nginx killed: CODE". A request that merely waited through nginx's SIGSTOP is not re-read: it has to
 * complete or fail cleanly on its own.
 */
export function attributeNginxCuts(records: readonly RequestRecord[], phases: readonly Phase[]): RequestRecord[] {
  const deadSpans = phases
    .filter((p) => p.target === "nginx" && p.kind === "kill")
    .map((p) => ({ fromMs: p.injectedAtMs, toMs: (p.healedAtMs ?? p.toMs) + GATEWAY_CUT_SLACK_MS }));
  return attributeConnectionCuts(records, deadSpans, NGINX_KILLED, "the connection through nginx broke while it was dead");
}

/**
 * answeredAsNginxDied counts the requests cut by nginx's death that were already on their way to a gateway and had
 * no 200 head: the gateway may have finished the answer, and recorded its usage, as nginx died between it and the client.
 */
function answeredAsNginxDied(records: readonly RequestRecord[], phases: readonly Phase[]): number {
  const kills = phases.filter((p) => p.target === "nginx" && p.kind === "kill").map((p) => p.injectedAtMs);
  return records.filter(
    (r) => r.error?.startsWith(NGINX_KILLED) === true && r.status !== 200 && kills.some((at) => r.startMs <= at && r.endMs >= at),
  ).length;
}

function isCut(record: RequestRecord): boolean {
  return record.error?.startsWith(GATEWAY_KILLED) === true || record.error?.startsWith(NGINX_KILLED) === true;
}

/**
 * checkRequests: no request hung; every failure was clean (OpenAI's envelope, an error frame, or a cut by a kill);
 * and none failed but those in flight on the killed (or long stopped) gateway or cut by nginx's death, and those
 * between a gateway's or nginx's fault and its agents' return.
 */
function checkRequests(records: readonly RequestRecord[], phases: readonly Phase[]): Check[] {
  const hung = records.filter((r) => r.outcome === "hung");
  const unclean = records.filter((r) => r.outcome === "lost");
  const failed = records.filter((r) => r.outcome !== "succeeded" && !isCut(r));
  // From a gateway's fault until its agents are attached again, the links it held are dead or frozen, and the other
  // gateway's routes still lead there. From nginx's, no request reaches a gateway (refused, or waiting in the frozen
  // nginx) and then none finds an agent attached until they dial again.
  const moving = phases
    .filter((p) => p.target === "gateway" || p.target === "nginx")
    .map((p) => ({ fromMs: p.injectedAtMs, toMs: p.injectedAtMs + (p.agentsBackAfterMs ?? Number.POSITIVE_INFINITY) }));
  const strays = failed.filter((r) => r.outcome !== "clean_error" || !moving.some((m) => r.endMs >= m.fromMs && r.startMs <= m.toMs));
  const where = (r: RequestRecord) => phases.find((p) => r.startMs >= p.fromMs && r.startMs < p.toMs)?.label ?? "calm";
  const show = (list: readonly RequestRecord[]) =>
    list
      .slice(0, 8)
      .map(
        (r) =>
          `${r.id} (${where(r)}, +${(r.startMs / 1000).toFixed(1)}s, ${r.stream ? "stream" : "body"}): ${r.outcome} ${r.error ?? ""} ${r.detail}`,
      )
      .join("; ");
  return [
    { name: "0 hung", ok: hung.length === 0, detail: hung.length === 0 ? `${records.length} requests ended` : show(hung) },
    {
      name: "0 lost: every failure was a clean error",
      ok: unclean.length === 0,
      detail:
        unclean.length === 0
          ? `${records.filter((r) => r.outcome === "clean_error").length} clean errors`
          : `${unclean.length}: ${show(unclean)}`,
    },
    {
      name: "failures only in flight on the killed or stopped gateway, or cut by nginx's death",
      ok: failed.length === 0,
      // Requests that draw a returning agent's stale route in the moments after a fault fail cleanly too; the check
      // below is the promise, this one how far from perfect the run was.
      reported: true,
      detail: failed.length === 0 ? `${records.filter(isCut).length} cut by the kills` : `${failed.length}: ${show(failed)}`,
    },
    {
      name: "other failures only between a gateway's or nginx's fault and its agents' return",
      ok: strays.length === 0,
      detail:
        strays.length === 0
          ? `${failed.length} failed, cleanly, in flight between a gateway's or nginx's fault and its agents' return`
          : `${strays.length}: ${show(strays)}`,
    },
  ];
}

/**
 * usageCheck: every successful request has its usage row (a row of status 200 with its completion tokens), and the
 * rows left over are no more than the failed requests that had a 200 head (a stream cut on a gateway that lived on
 * records its partial answer): so no success is missing and none is counted twice.
 */
function usageCheck(usage: UsageTally, failedWithHead: number, atRisk: number): Check[] {
  const ok = usage.missingTokens.length === 0 && usage.extraTokens.length <= failedWithHead;
  const rows = [...usage.rowsByStatus].map(([status, n]) => `${n}×${status}`).join(", ");
  return [
    {
      name: "usage rows in PostgreSQL == successful requests, each once",
      ok,
      detail:
        `${usage.succeeded} succeeded, ${usage.okRows} rows of status 200 (all rows: ${rows || "none"}); ` +
        `${usage.missingTokens.length} successes without a row; ${usage.extraTokens.length} rows of status 200 without a success ` +
        `(completion tokens ${usage.extraTokens.join(",") || "-"}), ${failedWithHead} failed requests had a 200 head`,
    },
    {
      name: "no usage row counted twice or without a request",
      ok: usage.extraTokens.length <= failedWithHead,
      detail: `${usage.extraTokens.length} rows of status 200 without a success, ${failedWithHead} failed requests had a 200 head`,
    },
    {
      name: "usage rows missing only for successes just before a gateway's SIGKILL",
      ok: usage.missingTokens.length <= atRisk,
      detail: `${usage.missingTokens.length} successes without a row; ${atRisk} succeeded within ${USAGE_AT_RISK_MS} ms before a gateway's SIGKILL took effect`,
    },
  ];
}

/**
 * USAGE_AT_RISK_MS is how long before a gateway's death a success's usage record may still be in its memory: one
 * flush period, and the batch's send to the registry.
 */
const USAGE_AT_RISK_MS = DEFAULT_USAGE_FLUSH_MS + 500;

function successesAtRisk(records: readonly RequestRecord[], phases: readonly Phase[]): number {
  const deaths = phases.filter((p) => p.target === "gateway" && p.kind === "kill").map((p) => p.goneAtMs ?? p.injectedAtMs);
  return records.filter((r) => r.outcome === "succeeded" && deaths.some((at) => r.endMs <= at && r.endMs >= at - USAGE_AT_RISK_MS)).length;
}

/**
 * departuresCheck: no provider left a replica's view during the faults of the given targets (from the lead-in of
 * each to the end of its settling).
 */
function departuresCheck(
  name: string,
  watches: readonly ReplicaWatch[],
  phases: readonly Phase[],
  targets: readonly DeploymentTarget[],
): Check {
  const phaseOf = (d: Departure) => phases.find((p) => d.atMs >= p.fromMs && d.atMs < p.toMs);
  const departures = watches.flatMap((w) => w.departures).filter((d) => targets.includes(phaseOf(d)?.target ?? "gateway"));
  return {
    name,
    ok: departures.length === 0,
    detail:
      departures.length === 0
        ? "none"
        : departures
            .map((d) => `${d.providerId} on ${d.replica} at +${(d.atMs / 1000).toFixed(1)}s (${phaseOf(d)?.label ?? "calm"}: ${d.cause})`)
            .join("; "),
  };
}

/** phaseFigures counts and times the requests that started before the first phase ("calm") and in each phase. */
export function phaseFigures(records: readonly RequestRecord[], phases: readonly Phase[]): PhaseFigures[] {
  const windows = [
    { label: "before the faults", fromMs: Number.NEGATIVE_INFINITY, toMs: phases[0]?.injectedAtMs ?? Number.POSITIVE_INFINITY },
    ...phases.map((p, i) => ({
      label: p.label,
      fromMs: p.injectedAtMs,
      toMs: phases[i + 1]?.injectedAtMs ?? Number.POSITIVE_INFINITY,
    })),
  ];
  return windows.map((w) => {
    const mine = records.filter((r) => r.startMs >= w.fromMs && r.startMs < w.toMs);
    const ok = mine.filter((r) => r.outcome === "succeeded");
    const head = percentiles(ok.map((r) => (r.headersMs ?? r.endMs) - r.startMs));
    const total = percentiles(ok.map((r) => r.endMs - r.startMs));
    return {
      label: w.label,
      sent: mine.length,
      ok: ok.length,
      failed: mine.length - ok.length,
      cut: mine.filter(isCut).length,
      headP50Ms: head.p50,
      headP99Ms: head.p99,
      totalP50Ms: total.p50,
      totalP99Ms: total.p99,
      totalMaxMs: total.max,
    };
  });
}

function formatDeploymentReport(run: {
  options: DeploymentSuiteOptions;
  phases: readonly Phase[];
  figures: readonly PhaseFigures[];
  usage: UsageTally | undefined;
  departures: readonly Departure[];
  checks: readonly Check[];
  runDir: string;
  passed: boolean;
  cli: CliCommand;
}): string {
  const { options } = run;
  const ms = (v: number | null | undefined) => (v === null || v === undefined ? "-" : `${Math.round(v)}`);
  const lines = [
    `infermesh deployment under faults (seed ${options.seed}): ${run.passed ? "PASSED" : "FAILED"}`,
    `deployment: nginx (TLS, HTTP/2 for agents) in front of 2 gateways (--redis, both registries in opposite orders, ` +
      `${options.rateLimitRpm} requests/min and ${options.maxStreams} streams per key), 2 registry replicas (PostgreSQL, Redis, ` +
      `heartbeat ${options.heartbeatIntervalMs} ms, TTL ${options.ttlMs} ms), ${options.agents} agents each with a simulator; ` +
      `infermesh run from: ${run.cli.description}`,
    `load: ${options.clients} clients through nginx, ${Math.round(options.streamShare * 100)}% streamed, ${options.tokens[0]}-${options.tokens[1]} ` +
      `tokens at ${options.tokensPerSecond}/s, client timeout ${options.clientTimeoutMs} ms; each fault ${options.downMs} ms`,
    "",
    "faults:",
    ...run.phases.map(
      (p) =>
        `  ${p.label.padEnd(20)} at +${(p.injectedAtMs / 1000).toFixed(1)}s, healed +${p.healedAtMs === undefined ? "-" : (p.healedAtMs / 1000).toFixed(1)}s` +
        `, whole again ${p.recoveredAtMs === undefined || p.healedAtMs === undefined ? "NEVER" : `${p.recoveredAtMs - p.healedAtMs} ms`} after` +
        (p.target !== "gateway" && p.target !== "nginx"
          ? ""
          : p.agentsBackAfterMs === undefined
            ? "; agents attached again NEVER"
            : `; agents back after ${p.agentsBackAfterMs} ms${afterHealing(p.agentsBackAfterHealMs)}`) +
        ` (${p.note})`,
    ),
    "",
    "requests by the phase they started in (latency of successful ones, ms: response head p50/p99, whole answer p50/p99/max):",
    `  ${"phase".padEnd(20)} ${"sent".padStart(5)} ${"ok".padStart(5)} ${"failed".padStart(6)} ${"cut".padStart(4)}   head p50/p99    total p50/p99/max`,
    ...run.figures.map(
      (f) =>
        `  ${f.label.padEnd(20)} ${String(f.sent).padStart(5)} ${String(f.ok).padStart(5)} ${String(f.failed).padStart(6)} ${String(f.cut).padStart(4)}` +
        `   ${`${ms(f.headP50Ms)}/${ms(f.headP99Ms)}`.padEnd(14)}  ${ms(f.totalP50Ms)}/${ms(f.totalP99Ms)}/${ms(f.totalMaxMs)}`,
    ),
    "",
    `usage: ${run.usage ? `${run.usage.succeeded} successes, rows by status ${[...run.usage.rowsByStatus].map(([s, n]) => `${s}: ${n}`).join(", ")}; gateways spool their records to disk, so a killed one's are sent by its restart` : "not tallied"}`,
    "",
    "checks:",
    ...run.checks.map((c) => `  ${c.ok ? "ok  " : c.reported ? "note" : "FAIL"} ${c.name}: ${c.detail}`),
    "",
    `logs and requests.json in ${run.runDir}`,
  ];
  return lines.join("\n");
}

const USAGE = `usage: npm run faults -- --deployment [flags]

  --short                   the test's form: each fault ${DEPLOYMENT_SHORT_FORM.downMs / 1000} s, ${DEPLOYMENT_SHORT_FORM.clients} clients
  --down-ms MS              how long each target stays dead or stopped (full form ${DEPLOYMENT_FULL_FORM.downMs})
  --clients N               concurrent load clients (full form ${DEPLOYMENT_FULL_FORM.clients})
  --targets LIST            targets to strike, comma-separated, in this order (default all: ${DEPLOYMENT_TARGETS.join(",")});
                            nginx is the load balancer: SIGKILLed with its workers, then SIGSTOPped with them
  --seed N                  seed of the request mix (default ${DEPLOYMENT_FULL_FORM.seed})
  --log-level LEVEL         the processes' log level (default info); logs stay in the run folder
  --run-dir DIR             where the logs go (default: a new temporary folder)
  --compile                 run the working tree compiled with tsc into the run folder (faster starts and restarts)
`;

/** deploymentMain runs the deployment suite from the command line and prints its report; 1 when a check failed. */
export async function deploymentMain(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      short: { type: "boolean" },
      "down-ms": { type: "string" },
      clients: { type: "string" },
      targets: { type: "string" },
      seed: { type: "string" },
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
  const base = values.short ? DEPLOYMENT_SHORT_FORM : DEPLOYMENT_FULL_FORM;
  const targets = values.targets === undefined ? base.targets : values.targets.split(",").map((t) => t.trim());
  for (const target of targets)
    if (!(DEPLOYMENT_TARGETS as readonly string[]).includes(target))
      throw new Error(`--targets: unknown target '${target}' (${DEPLOYMENT_TARGETS.join(", ")})`);
  const signal = stopOnCtrlC("stopping after the fault under way; checking and stopping the deployment");
  const result = await runDeploymentSuite({
    ...base,
    seed: wholeFlag("seed", values.seed, base.seed),
    downMs: wholeFlag("down-ms", values["down-ms"], base.downMs, 100),
    clients: wholeFlag("clients", values.clients, base.clients, 1),
    targets: targets as DeploymentTarget[],
    logLevel: values["log-level"] ?? base.logLevel,
    ...(values["run-dir"] === undefined ? {} : { runDir: values["run-dir"] }),
    compile: values.compile === true,
    progress: (line) => process.stderr.write(`# ${line}\n`),
    signal,
  });
  process.stdout.write(`${result.report}\n`);
  return result.passed ? 0 : 1;
}
