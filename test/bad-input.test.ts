import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { expect } from "chai";
import OpenAI from "openai";
import { AccountService } from "../gen/infermesh/v1/accounts_pb.js";
import { AgentService, InferenceService } from "../gen/infermesh/v1/inference_pb.js";
import { AgentLinkService } from "../gen/infermesh/v1/link_pb.js";
import { RegistryService } from "../gen/infermesh/v1/registry_pb.js";
import { DEFAULT_LOGIN_LIMITS } from "../services/gateway/login-limiter.js";
import { expectedCompletionText } from "../services/sim/simulator.js";
import { apiCorpus } from "./bad-input/api-corpus.js";
import type { BadInputCase, CorpusContext } from "./bad-input/corpus-types.js";
import { grpcCorpus } from "./bad-input/grpc-corpus.js";
import { httpCorpus } from "./bad-input/http-corpus.js";
import { GrpcClients, grpcProblems, httpProblems, resolved, sendHttp, sendRaw } from "./bad-input/runner.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";
import { attachScriptedAgent, type Script, type ScriptedAgent } from "./support/scripted-agent.js";
import { bearer, stockClient, unary } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// A corpus of malformed requests to every HTTP endpoint and gRPC service of a real mesh. Each gets
// its 4xx in OpenAI's envelope (or its gRPC code), nothing hangs, nothing crashes, nothing that should stop at the
// gateway reaches a model server, and the heap returns to its baseline after the corpus has run several times.

const MODELS = {
  llm: "sim-llama",
  stt: "sim-whisper",
  image: "sim-diffusion",
  tts: "sim-voice",
  embedding: "bad-input-embed",
  rerank: "bad-input-rerank",
  chatOnly: "bad-input-chat-only",
} as const;
/** SCRIPTED_PROVIDER serves the embedding, rerank and chat-only models, whatever the simulator serves; no case reaches it. */
const SCRIPTED_PROVIDER = "bad-input-scripted";
const MiB = 1024 * 1024;
/** MAX_HEAP_GROWTH_BYTES is how much more heap three rounds of the corpus may leave behind than one did. */
const MAX_HEAP_GROWTH_BYTES = 20 * MiB;
const MEMORY_ROUNDS = 3;

/** MIN_CASES_PER_TARGET is how many cases each endpoint, RPC and kind of bad route must have at least. */
const MIN_CASES_PER_TARGET = 4;
/** RPCS are the contract's RPCs, "RegistryService/Heartbeat" and so on, from the generated service descriptors. */
const RPCS: readonly string[] = [RegistryService, AccountService, InferenceService, AgentService, AgentLinkService].flatMap((service) =>
  service.methods.map((method) => `${service.name}/${method.name}`),
);
const UNKNOWN_ROUTES = "unknown routes and wrong methods";
const UNKNOWN_RPCS = "unknown services and methods";
const RAW_FRAMING = "raw HTTP framing";

/** SESSION_TTL_MS is how long the corpus's session lasts: longer than any run. */
const SESSION_TTL_MS = 60 * 60 * 1000;

/** Endpoint is a documented method and path template ("DELETE /api/keys/{id}") with a matcher for concrete paths. */
interface Endpoint {
  readonly name: string;
  readonly matches: (method: string, path: string) => boolean;
}

/** endpointOf reads a template: each `{param}` stands for one path segment. */
function endpointOf(method: string, template: string): Endpoint {
  const escaped = template.split(/\{[^}/]+\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`^${escaped.join("[^/]+")}$`);
  return { name: `${method} ${template}`, matches: (m, path) => m === method && pattern.test(path) };
}

/** targetOf names what a case is sent to: an endpoint ("DELETE /api/keys/{id}"), an RPC, or a kind of bad address. */
function targetOf(testCase: BadInputCase, endpoints: readonly Endpoint[], context: CorpusContext): string {
  if (testCase.kind === "raw") return RAW_FRAMING;
  if (testCase.kind === "grpc") {
    const rpc = testCase.path.replace(/^\/infermesh\.v1\./, "");
    return RPCS.includes(rpc) ? rpc : UNKNOWN_RPCS;
  }
  const path = resolved(testCase.path, context).split("?")[0] as string;
  return endpoints.find((endpoint) => endpoint.matches(testCase.method, path))?.name ?? UNKNOWN_ROUTES;
}

/** documented tells whether the corpus must cover a documented path: the OpenAI façade and the members' API. */
function documented(path: string): boolean {
  return path.startsWith("/v1/") || (path.startsWith("/api/") && !path.startsWith("/api/inference/"));
}

/** CaseResult is how one case went: what missed its target, if anything. */
interface CaseResult {
  readonly testCase: BadInputCase;
  readonly problems: readonly string[];
}

/** collectGarbage returns a full GC: node's own with --expose-gc, else one exposed at runtime. */
function collectGarbage(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("bad input: a corpus of malformed requests to every endpoint and gRPC service", function () {
  this.timeout(120_000);
  let mesh: Mesh;
  let agent: MeshAgent;
  let scripted: ScriptedAgent;
  let clients: GrpcClients;
  let context: CorpusContext;
  let reachedModel = 0;
  let rounds = 0;
  const corpus: BadInputCase[] = [...httpCorpus(), ...apiCorpus(), ...grpcCorpus()];

  before(async () => {
    // No rate limits: the corpus sends hundreds of requests a minute with one key, and 429 is not what it tests.
    mesh = await startMesh({}, { rateLimits: { inferencePerMinute: 0, modelsPerMinute: 0, concurrentStreams: 0 } });
    const apiKey = await mesh.registry.keyFor("alice");
    agent = await mesh.addAgent({
      user: "alice",
      apiKey,
      sim: {
        tokensPerSecond: 0,
        models: [
          { id: MODELS.llm, kind: "llm", contextLength: 4096 },
          { id: MODELS.stt, kind: "stt" },
          { id: MODELS.image, kind: "image" },
          { id: MODELS.tts, kind: "tts" },
        ],
      },
    });
    agent.simulator.events.on("request", (seen) => {
      if (seen.method === "POST") reachedModel++;
    });
    // The models of the routes the simulator may not serve yet, and an llm model whose provider speaks no protocol but
    // chat: a scripted provider, so that the cases' outcomes hang on the gateway alone.
    scripted = await attachScriptedAgent(
      mesh.gateway.baseUrl,
      apiKey,
      SCRIPTED_PROVIDER,
      [
        { id: MODELS.embedding, serviceType: "SERVICE_TYPE_EMBEDDING" },
        { id: MODELS.rerank, serviceType: "SERVICE_TYPE_RERANK" },
        { id: MODELS.chatOnly, serviceType: "SERVICE_TYPE_LLM", supportedFeatures: ["tools"] },
      ],
      async function* (): ReturnType<Script> {
        reachedModel++;
        yield { part: { part: { case: "head", value: { status: 200, contentType: "application/json" } } } };
        yield { part: { part: { case: "data", value: Buffer.from("{}") } } };
        yield { part: { part: { case: "trailer", value: {} } } };
      },
    );
    await waitFor("the scripted provider in the gateway's table", () => mesh.gateway.gateway.table.provider(SCRIPTED_PROVIDER));
    const otherKey = await mesh.registry.keyFor("bob");
    const { store } = mesh.registry;
    const [alice, bob] = [await store.findUser("alice"), await store.findUser("bob")];
    if (!alice || !bob) throw new Error("the store lost a user it just made");
    context = {
      apiKey,
      otherKey,
      meshToken: MESH_TOKEN,
      providerId: agent.providerId,
      models: MODELS,
      userId: alice.id,
      otherUserId: bob.id,
      spareKeyId: (await store.createApiKey("alice", "spare")).record.id,
      sessionId: (await store.createSession(alice.id, SESSION_TTL_MS)).sessionId,
    };
    clients = new GrpcClients({
      registry: mesh.registry.address,
      gateway: mesh.gateway.grpcAddress,
      link: new URL(mesh.gateway.baseUrl).host,
    });
  });

  after(async () => {
    clients?.close();
    await scripted?.close();
    await mesh?.stop();
  });

  /** runCase sends one case and judges it against its target. */
  async function runCase(testCase: BadInputCase): Promise<CaseResult> {
    const before = reachedModel;
    const judge = await observe(testCase);
    const reached = reachedModel - before;
    const problems = [
      ...judge(),
      ...(reached > 0 && testCase.expect.reachesModel !== true ? [`reached the model server (${reached} requests)`] : []),
    ];
    return { testCase, problems };
  }

  /** observe sends a case and returns a judge of its outcome against its target. */
  async function observe(testCase: BadInputCase): Promise<() => string[]> {
    if (testCase.kind === "grpc") {
      const observed = await clients.send(testCase, context);
      return () => grpcProblems(observed, { code: testCase.expect.code, inBandStatus: testCase.expect.inBandStatus });
    }
    const method = testCase.kind === "http" ? testCase.method : "RAW";
    const observed =
      testCase.kind === "http"
        ? await sendHttp(mesh.gateway.baseUrl, testCase, context)
        : await sendRaw(mesh.gateway.baseUrl, testCase, context);
    return () => httpProblems(method, observed, testCase.expect);
  }

  async function runCorpus(): Promise<CaseResult[]> {
    const results: CaseResult[] = [];
    for (const testCase of corpus) results.push(await runCase(testCase));
    agent.simulator.reset();
    rounds++;
    return results;
  }

  /** failures lists the cases that missed, one line each, and prints them: chai would cut a long list short. */
  function failures(results: readonly CaseResult[]): string[] {
    const lines = results.filter((r) => r.problems.length > 0).map((r) => `${r.testCase.name}: ${r.problems.join("; ")}`);
    if (lines.length > 0) console.log(`      ${lines.length} cases missed:\n${lines.map((line) => `        ${line}`).join("\n")}`);
    return lines;
  }

  it(`covers every /v1/ and members' /api/ endpoint the gateway documents and every RPC of the contract, each with ${MIN_CASES_PER_TARGET} cases or more`, async () => {
    const names = corpus.map((c) => c.name);
    expect(new Set(names).size, "case names are unique").to.equal(names.length);
    // The façade's endpoints as the gateway's own OpenAPI document lists them, so a new endpoint needs its cases here.
    const document = (await mesh.gateway.gateway.http.inject({ method: "GET", url: "/openapi.json" })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const endpoints = Object.entries(document.paths)
      .filter(([path]) => documented(path))
      .flatMap(([path, item]) => Object.keys(item).map((method) => endpointOf(method.toUpperCase(), path)));
    const byTarget = new Map<string, number>();
    for (const testCase of corpus) {
      const target = targetOf(testCase, endpoints, context);
      byTarget.set(target, (byTarget.get(target) ?? 0) + 1);
    }
    console.log(`      ${corpus.length} cases: ${[...byTarget].map(([target, count]) => `${target} ${count}`).join(", ")}`);
    const targets = [...endpoints.map((endpoint) => endpoint.name), ...RPCS, UNKNOWN_ROUTES, UNKNOWN_RPCS, RAW_FRAMING];
    // Failed sign-ins count against the address for 15 minutes, over every round of the corpus this file runs.
    const failedSignIns = corpus.filter(
      (c) => c.kind === "http" && (c.expect.code === "invalid_credentials" || c.expect.code === "invalid_sign_in_link"),
    ).length;
    expect(failedSignIns * (1 + MEMORY_ROUNDS), "failed sign-ins over every round").to.be.below(DEFAULT_LOGIN_LIMITS.perAddress);
    const thin = targets.filter((target) => (byTarget.get(target) ?? 0) < MIN_CASES_PER_TARGET);
    expect(thin, `targets with fewer than ${MIN_CASES_PER_TARGET} cases`).to.deep.equal([]);
  });

  it("answers every case with its 4xx envelope or gRPC code; only valid-by-design cases reach the model server", async () => {
    const results = await runCorpus();
    expect(failures(results)).to.deep.equal([]);
  });

  it("keeps serving after the corpus: a chat completion at the gateway and ListProviders at the registry", async () => {
    const client = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: context.apiKey, maxRetries: 0, timeout: 15_000 });
    const messages = [{ role: "user" as const, content: "still there?" }];
    const chat = await client.chat.completions.create({ model: MODELS.llm, messages, max_tokens: 3 });
    expect(chat.choices[0]?.message.content).to.equal(expectedCompletionText(messages, 3));
    const registry = stockClient("RegistryService", mesh.registry.address);
    try {
      const listed = await unary<{ providers: { id: string }[] }>(registry, "listProviders", {}, bearer(MESH_TOKEN));
      expect(listed.providers.map((p) => p.id)).to.include(agent.providerId);
    } finally {
      registry.close();
    }
  });

  it(`returns the heap to its baseline after ${MEMORY_ROUNDS} more rounds of the corpus`, async () => {
    const gc = collectGarbage();
    const settled = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return process.memoryUsage();
    };
    // A first round (the one above, unless it was skipped) warms every code path and cache up, so the baseline holds
    // what stays anyway.
    if (rounds === 0) expect(failures(await runCorpus())).to.deep.equal([]);
    const baseline = await settled();
    for (let round = 0; round < MEMORY_ROUNDS; round++) expect(failures(await runCorpus()), `round ${round + 1}`).to.deep.equal([]);
    const after = await settled();
    const growth = after.heapUsed - baseline.heapUsed;
    const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
    console.log(
      `      heapUsed ${mb(baseline.heapUsed)} -> ${mb(after.heapUsed)}, arrayBuffers ${mb(baseline.arrayBuffers)} -> ${mb(after.arrayBuffers)}, ` +
        `rss ${mb(baseline.rss)} -> ${mb(after.rss)}`,
    );
    expect(growth, `heapUsed grew by ${mb(growth)}`).to.be.below(MAX_HEAP_GROWTH_BYTES);
    expect(after.arrayBuffers - baseline.arrayBuffers, "Buffers left behind").to.be.below(MAX_HEAP_GROWTH_BYTES);
  });
});
