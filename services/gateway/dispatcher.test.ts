import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import {
  ErrorKind,
  type InferenceCall,
  InferenceCallSchema,
  type InferencePart,
  InferencePartSchema,
  MediaFileSchema,
  MediaRole,
  Operation,
} from "../../gen/infermesh/v1/inference_pb.js";
import {
  PrincipalSchema,
  type Provider,
  type ProviderSchema,
  Visibility,
  WatchProvidersResponseSchema,
} from "../../gen/infermesh/v1/registry_pb.js";
import { type Gate, gate } from "../../test/support/gate.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { waitFor } from "../../test/support/wait-for.js";
import { type Dispatch, Dispatcher, type DispatcherOptions, type DispatchRequest } from "./dispatcher.js";
import { GatewayError } from "./gateway-errors.js";
import { ProviderHealth } from "./provider-health.js";
import { RoutingTable } from "./routing-table.js";

type AgentCalls = DispatcherOptions["agents"];

/** Script answers one call to a provider, as an agent would: the answer's parts, or a thrown ConnectError. */
type Script = (call: InferenceCall, signal: AbortSignal) => AsyncIterable<InferencePart>;

/**
 * ScriptedAgents is a fake AgentCalls: each provider answers by its script, and every call is recorded. A provider in
 * unreachable has no link anywhere, as one that reports over HTTP or whose gateway takes no forwarded calls.
 */
class ScriptedAgents implements AgentCalls {
  readonly calls: { readonly provider: string; readonly call: InferenceCall }[] = [];
  readonly scripts = new Map<string, Script>();
  readonly unreachable = new Set<string>();

  infer(provider: { readonly id: string }, call: InferenceCall, signal: AbortSignal): AsyncIterable<InferencePart> {
    this.calls.push({ provider: provider.id, call });
    const script = this.scripts.get(provider.id);
    if (!script) throw new Error(`no script for provider ${provider.id}`);
    return script(call, signal);
  }

  reachable(provider: { readonly id: string }): boolean {
    return !this.unreachable.has(provider.id);
  }

  /** downWith lists, per provider, the providers its failure takes out of reach (those on the same dead gateway). */
  readonly downWith = new Map<string, readonly string[]>();
  readonly failuresNoted: string[] = [];

  noteFailure(provider: { readonly id: string }, error: unknown): void {
    this.failuresNoted.push(`${provider.id}: ${error instanceof ConnectError ? error.rawMessage : String(error)}`);
    for (const id of this.downWith.get(provider.id) ?? []) this.unreachable.add(id);
  }

  /** providersCalled are the providers called so far, in order. */
  get providersCalled(): string[] {
    return this.calls.map((c) => c.provider);
  }
}

/** PartInit is one part as written in a script: which case, and its value. */
type PartInit = NonNullable<Exclude<MessageInitShape<typeof InferencePartSchema>, InferencePart>["part"]>;
const part = (init: PartInit) => create(InferencePartSchema, { part: init });
const head = (status = 200, contentType = "application/json") => part({ case: "head", value: { status, contentType } });
const data = (text: string) => part({ case: "data", value: Buffer.from(text) });
const trailer = () => part({ case: "trailer", value: {} });
const errorPart = (kind: ErrorKind, httpStatus: number, type: string, message: string) =>
  part({ case: "error", value: { kind, httpStatus, type, message } });

/** answers is a provider that answers `{"from":"<id>"}`. */
const answers = (from: string): Script =>
  async function* () {
    yield head();
    yield data(`{"from":"${from}"}`);
    yield trailer();
  };

/** throws is a provider whose call fails with a gRPC status before any part. */
const throws = (code: Code, message: string): Script =>
  // biome-ignore lint/correctness/useYield: a call that fails before its first part yields nothing
  async function* () {
    throw new ConnectError(message, code);
  };

/** sends is a provider that answers with the given parts. */
const sends = (...parts: InferencePart[]): Script =>
  async function* () {
    yield* parts;
  };

const heldBy = (held: Gate, then: Script): Script =>
  async function* (call, signal) {
    await held.opened;
    yield* then(call, signal);
  };

/** Read is what a reader of a dispatch gets: each part in short, and what the reading threw, if anything. */
interface Read {
  readonly parts: string[];
  readonly thrown: string | null;
}

function describePart(p: InferencePart): string {
  switch (p.part.case) {
    case "head":
      return `head ${p.part.value.status}`;
    case "data":
      return `data ${Buffer.from(p.part.value).toString()}`;
    case "event":
      return `event ${Buffer.from(p.part.value.data).toString()}`;
    case "trailer":
      return "trailer";
    case "error":
      return `error ${p.part.value.httpStatus} ${p.part.value.message}`;
    case undefined:
      return "empty";
  }
}

async function read(dispatch: Dispatch): Promise<Read> {
  const parts: string[] = [];
  try {
    for await (const p of dispatch.parts) parts.push(describePart(p));
  } catch (error) {
    return { parts, thrown: error instanceof ConnectError ? `${Code[error.code]}: ${error.rawMessage}` : String(error) };
  }
  return { parts, thrown: null };
}

/** refusal is the GatewayError a call throws, as the client would read it. */
function refusal(run: () => unknown): { status: number; body: unknown } {
  try {
    run();
  } catch (error) {
    if (error instanceof GatewayError) return { status: error.status, body: error.body() };
    throw error;
  }
  throw new Error("expected a GatewayError, but nothing was thrown");
}

const alice = create(PrincipalSchema, { userId: "u1", userName: "alice", keyId: "key-1" });
const DEADLINE_MS = 1_700_000_300_000;
const CHAT_BYTES = Buffer.from('{"model":"m",  "messages":[{"role":"user","content":"hi"}]}');

function request(overrides: Partial<DispatchRequest> = {}): DispatchRequest {
  return {
    operation: Operation.CHAT_COMPLETION,
    model: "m",
    stream: false,
    body: { bytes: CHAT_BYTES, fields: JSON.parse(CHAT_BYTES.toString()) as Record<string, unknown> },
    media: [],
    hideUsageChunks: false,
    principal: alice,
    requestId: "req-1",
    deadlineMs: DEADLINE_MS,
    signal: new AbortController().signal,
    ...overrides,
  };
}

type ProviderInit = Exclude<MessageInitShape<typeof ProviderSchema>, Provider>;

function provider(id: string, init: Partial<ProviderInit> = {}): ProviderInit {
  return {
    id,
    ownerUserId: "u1",
    online: true,
    gatewayId: "gateway-1",
    models: [{ id: "m", serviceType: ServiceType.LLM }],
    ...init,
  };
}

/** Mesh is a dispatcher over real routing and health, with scripted agents and a manual clock. */
interface Mesh {
  readonly dispatcher: Dispatcher;
  readonly agents: ScriptedAgents;
  readonly health: ProviderHealth;
  readonly clock: ManualClock;
}

function mesh(
  providers: ProviderInit[],
  options: { failoverAttempts?: number; failureThreshold?: number; cooldownMs?: number } = {},
): Mesh {
  const clock = new ManualClock();
  const table = new RoutingTable({ clock });
  table.apply(create(WatchProvidersResponseSchema, { event: { case: "snapshot", value: { providers } } }));
  const health = new ProviderHealth({ clock, failureThreshold: options.failureThreshold ?? 3, cooldownMs: options.cooldownMs ?? 1_000 });
  const agents = new ScriptedAgents();
  const dispatcher = new Dispatcher({ table, agents, health, failoverAttempts: options.failoverAttempts ?? 1 });
  return { dispatcher, agents, health, clock };
}

const routeOf = (m: Mesh, overrides: Partial<DispatchRequest> = {}) => m.dispatcher.route(request(overrides)).provider.id;

describe("Dispatcher", () => {
  describe("choosing a provider", () => {
    it("sends a request to the provider with the fewest requests in flight from this gateway", async () => {
      const m = mesh([provider("a"), provider("b")]);
      const held = gate();
      m.agents.scripts.set("a", heldBy(held, answers("a")));
      const first = read(m.dispatcher.dispatch(request()));
      await waitFor("the call to a", () => m.agents.calls.length === 1);
      expect({ called: m.agents.providersCalled, inFlight: m.dispatcher.inFlight("a") }).to.deep.equal({ called: ["a"], inFlight: 1 });
      expect([routeOf(m), routeOf(m), routeOf(m)]).to.deep.equal(["b", "b", "b"]);
      held.open();
      expect(await first).to.deep.equal({ parts: ["head 200", 'data {"from":"a"}', "trailer"], thrown: null });
      expect(m.dispatcher.inFlight("a")).to.equal(0);
    });

    it("breaks a tie in requests in flight by the lower load the provider reported", () => {
      const m = mesh([provider("a", { load: { inFlight: 5 } }), provider("b", { load: { inFlight: 0 } })]);
      expect([routeOf(m), routeOf(m), routeOf(m)]).to.deep.equal(["b", "b", "b"]);
    });

    it("routes only to providers whose agent a call can reach, and fails over to none that cannot", async () => {
      const m = mesh([provider("a"), provider("listed-only"), provider("b")]);
      m.agents.unreachable.add("listed-only");
      m.agents.scripts.set("a", throws(Code.Unavailable, "connection refused"));
      m.agents.scripts.set("b", throws(Code.Unavailable, "connection refused"));
      const routes = [routeOf(m), routeOf(m), routeOf(m), routeOf(m)];
      const dispatch = m.dispatcher.dispatch(request());
      expect({ routes, read: await read(dispatch), called: m.agents.providersCalled }).to.deep.equal({
        routes: ["a", "b", "a", "b"],
        read: { parts: [], thrown: "Unavailable: connection refused" },
        called: ["a", "b"],
      });
    });

    it("takes turns among providers equally busy", async () => {
      const m = mesh([provider("a"), provider("b")]);
      m.agents.scripts.set("a", answers("a"));
      m.agents.scripts.set("b", answers("b"));
      const bodies = [];
      for (let i = 0; i < 4; i++) bodies.push((await read(m.dispatcher.dispatch(request()))).parts[1]);
      expect({ called: m.agents.providersCalled, bodies }).to.deep.equal({
        called: ["a", "b", "a", "b"],
        bodies: ['data {"from":"a"}', 'data {"from":"b"}', 'data {"from":"a"}', 'data {"from":"b"}'],
      });
    });
  });

  describe("failover", () => {
    for (const kind of [ErrorKind.UPSTREAM, ErrorKind.SHUTDOWN]) {
      it(`tries another provider when the first answers with an error part of kind ${ErrorKind[kind]} before anything else`, async () => {
        const m = mesh([provider("a"), provider("b")]);
        m.agents.scripts.set("a", sends(errorPart(kind, 502, "upstream_error", "model server down")));
        m.agents.scripts.set("b", answers("b"));
        const dispatch = m.dispatcher.dispatch(request());
        expect(dispatch.answeredBy, "no provider has answered before the parts are read").to.equal(undefined);
        expect(await read(dispatch)).to.deep.equal({ parts: ["head 200", 'data {"from":"b"}', "trailer"], thrown: null });
        expect({ called: m.agents.providersCalled, answeredBy: dispatch.answeredBy?.provider.id }).to.deep.equal({
          called: ["a", "b"],
          answeredBy: "b",
        });
      });
    }

    it("tries another provider when the first is unavailable before its first part", async () => {
      const m = mesh([provider("a"), provider("b")]);
      m.agents.scripts.set("a", throws(Code.Unavailable, "connection refused"));
      m.agents.scripts.set("b", answers("b"));
      const dispatch = m.dispatcher.dispatch(request());
      expect(await read(dispatch)).to.deep.equal({ parts: ["head 200", 'data {"from":"b"}', "trailer"], thrown: null });
      expect({ called: m.agents.providersCalled, answeredBy: dispatch.answeredBy?.provider.id }).to.deep.equal({
        called: ["a", "b"],
        answeredBy: "b",
      });
    });

    it("answers the last failure when the other provider fails too, and counts both failures", async () => {
      const m = mesh([provider("a"), provider("b")], { failureThreshold: 1 });
      m.agents.scripts.set("a", throws(Code.Unavailable, "connection refused"));
      m.agents.scripts.set("b", sends(errorPart(ErrorKind.UPSTREAM, 502, "upstream_error", "model server down")));
      const dispatch = m.dispatcher.dispatch(request());
      expect(await read(dispatch)).to.deep.equal({ parts: ["error 502 model server down"], thrown: null });
      expect({
        called: m.agents.providersCalled,
        answeredBy: dispatch.answeredBy?.provider.id,
        open: [m.health.isOpen("a"), m.health.isOpen("b")],
      }).to.deep.equal({
        called: ["a", "b"],
        answeredBy: "b",
        open: [true, true],
      });
    });

    it("tries no other provider when failover is off", async () => {
      const m = mesh([provider("a"), provider("b")], { failoverAttempts: 0 });
      m.agents.scripts.set("a", throws(Code.Unavailable, "connection refused"));
      m.agents.scripts.set("b", answers("b"));
      expect(await read(m.dispatcher.dispatch(request()))).to.deep.equal({ parts: [], thrown: "Unavailable: connection refused" });
      expect(m.agents.providersCalled).to.deep.equal(["a"]);
    });

    it("never fails over once the first part is out, whether the call then throws or sends an error part", async () => {
      const m = mesh([provider("a"), provider("b")]);
      m.agents.scripts.set("a", async function* () {
        yield head(200, "text/event-stream");
        throw new ConnectError("connection reset", Code.Unavailable);
      });
      m.agents.scripts.set("b", async function* () {
        yield head(200, "text/event-stream");
        yield errorPart(ErrorKind.UPSTREAM, 502, "upstream_error", "model server died");
      });
      const thrownAfterHead = m.dispatcher.dispatch(request());
      const errorAfterHead = m.dispatcher.dispatch(request());
      expect([await read(thrownAfterHead), await read(errorAfterHead)]).to.deep.equal([
        { parts: ["head 200"], thrown: "Unavailable: connection reset" },
        { parts: ["head 200", "error 502 model server died"], thrown: null },
      ]);
      expect({
        called: m.agents.providersCalled,
        answeredBy: [thrownAfterHead.answeredBy?.provider.id, errorAfterHead.answeredBy?.provider.id],
      }).to.deep.equal({
        called: ["a", "b"],
        answeredBy: ["a", "b"],
      });
    });

    it("never fails over on a 4xx error part, nor counts it against the provider", async () => {
      const m = mesh([provider("a"), provider("b")], { failureThreshold: 1 });
      m.agents.scripts.set("a", sends(errorPart(ErrorKind.UNSPECIFIED, 400, "invalid_request_error", "context length exceeded")));
      m.agents.scripts.set("b", answers("b"));
      expect(await read(m.dispatcher.dispatch(request()))).to.deep.equal({ parts: ["error 400 context length exceeded"], thrown: null });
      expect({ called: m.agents.providersCalled, open: m.health.isOpen("a") }).to.deep.equal({ called: ["a"], open: false });
    });

    it("never fails over on an error part of a failing-over kind that the agent gave a 4xx, such as unsupported_endpoint", async () => {
      const m = mesh([provider("a"), provider("b")], { failureThreshold: 1 });
      const refusal = errorPart(ErrorKind.UPSTREAM, 400, "invalid_request_error", "no POST /v1/responses here");
      m.agents.scripts.set("a", sends(refusal));
      m.agents.scripts.set("b", answers("b"));
      expect(await read(m.dispatcher.dispatch(request()))).to.deep.equal({ parts: ["error 400 no POST /v1/responses here"], thrown: null });
      expect({ called: m.agents.providersCalled, open: m.health.isOpen("a") }).to.deep.equal({ called: ["a"], open: false });
    });

    it("fails over only to a provider that declares the operation's protocol feature", async () => {
      const speaks = { models: [{ id: "m", serviceType: ServiceType.LLM, supportedFeatures: ["responses"] }] };
      const m = mesh([provider("a", speaks), provider("chat-only"), provider("b", speaks)]);
      m.agents.scripts.set("a", sends(errorPart(ErrorKind.UPSTREAM, 502, "upstream_error", "a failed")));
      m.agents.scripts.set("b", sends(errorPart(ErrorKind.UPSTREAM, 502, "upstream_error", "b failed")));
      await read(m.dispatcher.dispatch(request({ operation: Operation.RESPONSE })));
      expect([...m.agents.providersCalled].sort()).to.deep.equal(["a", "b"]);
    });

    it("tells the agents why a call failed, so that its failover passes over what the failure took out of reach", async () => {
      const m = mesh([provider("a"), provider("b"), provider("c")]);
      m.agents.scripts.set("a", throws(Code.Unavailable, "connect ECONNREFUSED 10.0.0.9:7702"));
      m.agents.scripts.set("b", throws(Code.Unavailable, "connect ECONNREFUSED 10.0.0.9:7702"));
      m.agents.scripts.set("c", answers("c"));
      // a and b were attached to one gateway: a's refused call marks both.
      m.agents.downWith.set("a", ["a", "b"]);
      m.agents.downWith.set("b", ["a", "b"]);
      const read1 = await read(m.dispatcher.dispatch(request()));
      expect(read1.parts.at(-2)).to.equal('data {"from":"c"}');
      expect(m.agents.providersCalled).to.have.length(2);
      expect(m.agents.providersCalled[1]).to.equal("c");
      expect(m.agents.failuresNoted).to.have.length(1);
    });

    it("never fails over on InvalidArgument, nor counts it against the provider", async () => {
      const m = mesh([provider("a"), provider("b")], { failureThreshold: 1 });
      m.agents.scripts.set("a", throws(Code.InvalidArgument, "call.body must be a JSON object"));
      m.agents.scripts.set("b", answers("b"));
      expect(await read(m.dispatcher.dispatch(request()))).to.deep.equal({
        parts: [],
        thrown: "InvalidArgument: call.body must be a JSON object",
      });
      expect({ called: m.agents.providersCalled, open: m.health.isOpen("a"), inFlight: m.dispatcher.inFlight("a") }).to.deep.equal({
        called: ["a"],
        open: false,
        inFlight: 0,
      });
    });

    it("does not fail over on a TIMEOUT error part, but counts it against the provider", async () => {
      const m = mesh([provider("a"), provider("b")], { failureThreshold: 1 });
      m.agents.scripts.set("a", sends(errorPart(ErrorKind.TIMEOUT, 504, "timeout", "the deadline passed")));
      m.agents.scripts.set("b", answers("b"));
      expect(await read(m.dispatcher.dispatch(request()))).to.deep.equal({ parts: ["error 504 the deadline passed"], thrown: null });
      expect({ called: m.agents.providersCalled, open: m.health.isOpen("a") }).to.deep.equal({ called: ["a"], open: true });
    });
  });

  describe("circuit breaking", () => {
    it("skips a provider once its failures in a row reach the threshold", async () => {
      const m = mesh([provider("a"), provider("b")], { failoverAttempts: 0, failureThreshold: 2 });
      m.agents.scripts.set("a", throws(Code.Unavailable, "connection refused"));
      m.agents.scripts.set("b", answers("b"));
      const results = [];
      for (let i = 0; i < 6; i++) results.push((await read(m.dispatcher.dispatch(request()))).thrown);
      expect({ called: m.agents.providersCalled, results, open: m.health.isOpen("a") }).to.deep.equal({
        called: ["a", "b", "a", "b", "b", "b"],
        results: ["Unavailable: connection refused", null, "Unavailable: connection refused", null, null, null],
        open: true,
      });
    });

    it("lets one probe through a circuit that cooled down, and closes the circuit when the probe succeeds", async () => {
      const m = mesh([provider("a"), provider("b")], { failoverAttempts: 0, failureThreshold: 1, cooldownMs: 1_000 });
      m.agents.scripts.set("a", throws(Code.Unavailable, "connection refused"));
      expect((await read(m.dispatcher.dispatch(request()))).thrown).to.equal("Unavailable: connection refused");
      expect(m.health.isOpen("a")).to.equal(true);

      // b is kept busy, so that the least busy choice would be a as soon as a may be tried.
      const bHeld = gate();
      m.agents.scripts.set("b", heldBy(bHeld, answers("b")));
      const onB = read(m.dispatcher.dispatch(request()));
      await waitFor("the call to b", () => m.dispatcher.inFlight("b") === 1);
      expect(routeOf(m), "a is skipped while its circuit is open, however busy b is").to.equal("b");

      m.clock.advance(1_000);
      const probeHeld = gate();
      m.agents.scripts.set("a", heldBy(probeHeld, answers("a")));
      const probe = read(m.dispatcher.dispatch(request()));
      await waitFor("the probe to a", () => m.dispatcher.inFlight("a") === 1);
      expect([routeOf(m), routeOf(m)], "while the probe is out, a gets no other request").to.deep.equal(["b", "b"]);

      probeHeld.open();
      bHeld.open();
      expect([await probe, await onB]).to.deep.equal([
        { parts: ["head 200", 'data {"from":"a"}', "trailer"], thrown: null },
        { parts: ["head 200", 'data {"from":"b"}', "trailer"], thrown: null },
      ]);
      expect({ called: m.agents.providersCalled, open: m.health.isOpen("a"), next: [routeOf(m), routeOf(m)].sort() }).to.deep.equal({
        called: ["a", "b", "a"],
        open: false,
        next: ["a", "b"],
      });
    });

    it("still tries a provider when every circuit is open, rather than refuse", async () => {
      const m = mesh([provider("a")], { failureThreshold: 1 });
      m.agents.scripts.set("a", throws(Code.Unavailable, "connection refused"));
      await read(m.dispatcher.dispatch(request()));
      expect({ open: m.health.isOpen("a"), route: routeOf(m) }).to.deep.equal({ open: true, route: "a" });
    });

    it("counts a call the client aborted against no provider, and tries no other", async () => {
      const m = mesh([provider("a"), provider("b")], { failureThreshold: 1 });
      // An aborted call fails with whatever the transport says; here, a status that would count if the client were still there.
      const failsOnAbort: Script = async function* (_call, signal) {
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        throw new ConnectError("the stream was reset", Code.Unavailable);
      };
      m.agents.scripts.set("a", failsOnAbort);
      m.agents.scripts.set("b", answers("b"));
      const controller = new AbortController();
      const reading = read(m.dispatcher.dispatch(request({ signal: controller.signal })));
      await waitFor("the call to a", () => m.dispatcher.inFlight("a") === 1);
      controller.abort();
      expect(await reading).to.deep.equal({ parts: [], thrown: "Unavailable: the stream was reset" });
      expect({ called: m.agents.providersCalled, open: m.health.isOpen("a"), inFlight: m.dispatcher.inFlight("a") }).to.deep.equal({
        called: ["a"],
        open: false,
        inFlight: 0,
      });
    });

    it("counts a call the client aborted mid-answer against no provider", async () => {
      const m = mesh([provider("a")], { failureThreshold: 1 });
      m.agents.scripts.set("a", async function* (_call, signal) {
        yield head(200, "text/event-stream");
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        throw new ConnectError("the stream was reset", Code.Unavailable);
      });
      const controller = new AbortController();
      const dispatch = m.dispatcher.dispatch(request({ signal: controller.signal }));
      const iterator = dispatch.parts[Symbol.asyncIterator]();
      const first = await iterator.next();
      expect(first.done ? "done" : describePart(first.value)).to.equal("head 200");
      const second = iterator.next();
      controller.abort();
      const rejected = await second.then(
        () => "resolved",
        (error: unknown) => (error instanceof ConnectError ? Code[error.code] : String(error)),
      );
      expect({ rejected, open: m.health.isOpen("a"), inFlight: m.dispatcher.inFlight("a") }).to.deep.equal({
        rejected: "Unavailable",
        open: false,
        inFlight: 0,
      });
    });
  });

  describe("the call sent to the provider", () => {
    it("names the model as the provider serves it and rewrites the body with that name when it differs in case", async () => {
      const m = mesh([provider("a", { models: [{ id: "Sim-Llama", serviceType: ServiceType.LLM }] })]);
      m.agents.scripts.set("a", answers("a"));
      const bytes = Buffer.from('{"model":"sim-llama", "stream":true, "messages":[{"role":"user","content":"hi"}]}');
      const fields = JSON.parse(bytes.toString()) as Record<string, unknown>;
      const media = [
        create(MediaFileSchema, { role: MediaRole.IMAGE, filename: "cat.png", contentType: "image/png", data: Buffer.from("png") }),
      ];
      await read(m.dispatcher.dispatch(request({ model: "sim-llama", stream: true, body: { bytes, fields }, media })));
      const sent = m.agents.calls[0]?.call;
      expect(sent && { ...sent, body: Buffer.from(sent.body).toString() }).to.deep.equal({
        ...create(InferenceCallSchema, {
          operation: Operation.CHAT_COMPLETION,
          model: "Sim-Llama",
          stream: true,
          requestId: "req-1",
          deadline: timestampFromMs(DEADLINE_MS),
          caller: alice,
          media,
        }),
        body: JSON.stringify({ ...fields, model: "Sim-Llama" }),
      });
    });

    it("sends the client's very bytes when the provider serves the model under the client's name", async () => {
      const m = mesh([provider("a")]);
      m.agents.scripts.set("a", answers("a"));
      await read(m.dispatcher.dispatch(request()));
      const sent = m.agents.calls[0]?.call;
      expect(sent && { model: sent.model, body: Buffer.from(sent.body).toString() }).to.deep.equal({
        model: "m",
        body: CHAT_BYTES.toString(),
      });
    });
  });

  describe("refusals", () => {
    it("answers 404 no_provider for a model no provider of the caller serves", () => {
      const m = mesh([provider("a"), provider("theirs", { ownerUserId: "u2", models: [{ id: "private", serviceType: ServiceType.LLM }] })]);
      const noProvider = (model: string, noun: string) => ({
        status: 404,
        body: {
          error: {
            message: `No online provider serving ${noun} '${model}' for this user.`,
            type: "no_provider",
            param: "model",
            code: "model_not_served",
          },
        },
      });
      expect([
        refusal(() => m.dispatcher.dispatch(request({ model: "nowhere" }))),
        refusal(() => m.dispatcher.dispatch(request({ model: "private" }))),
        refusal(() => m.dispatcher.dispatch(request({ model: "nowhere", operation: Operation.TRANSCRIPTION }))),
      ]).to.deep.equal([noProvider("nowhere", "model"), noProvider("private", "model"), noProvider("nowhere", "speech-to-text model")]);
      expect(m.agents.calls).to.deep.equal([]);
    });

    it("answers 404 no_provider, providers_offline, when the caller's providers of the model have no link a call could go down", () => {
      const m = mesh([provider("http-only"), provider("gone-gateway")]);
      m.agents.unreachable.add("http-only");
      m.agents.unreachable.add("gone-gateway");
      expect(refusal(() => m.dispatcher.dispatch(request()))).to.deep.equal({
        status: 404,
        body: {
          error: {
            message: "No online provider serving model 'm' for this user: the providers that serve it are offline.",
            type: "no_provider",
            param: "model",
            code: "providers_offline",
          },
        },
      });
      expect(m.agents.calls).to.deep.equal([]);
    });

    it("routes to a provider another user shares publicly", () => {
      const m = mesh([provider("shared", { ownerUserId: "u2", sharing: { visibility: Visibility.PUBLIC } })]);
      expect(routeOf(m)).to.equal("shared");
    });

    it("answers 400 model_not_supported naming the model's own type, with the right article", () => {
      const m = mesh([provider("a"), provider("voice", { models: [{ id: "voice", serviceType: ServiceType.TTS }] })]);
      const notSupported = (message: string) => ({
        status: 400,
        body: { error: { message, type: "invalid_request_error", param: "model", code: "model_not_supported" } },
      });
      expect([
        refusal(() => m.dispatcher.dispatch(request({ model: "m", operation: Operation.SPEECH }))),
        refusal(() => m.dispatcher.dispatch(request({ model: "voice" }))),
      ]).to.deep.equal([
        notSupported("Model 'm' is an llm model; /v1/audio/speech needs a tts model."),
        notSupported("Model 'voice' is a tts model; /v1/chat/completions needs an llm model."),
      ]);
      expect(m.agents.calls).to.deep.equal([]);
    });

    it("answers 400 unsupported_endpoint, naming the protocol, for a model whose providers do not declare it", () => {
      const m = mesh([provider("a", { models: [{ id: "m", serviceType: ServiceType.LLM, supportedFeatures: ["tools", "messages"] }] })]);
      const unsupported = (protocol: string, path: string) => ({
        status: 400,
        body: {
          error: {
            message:
              `Model 'M' is served by no provider whose server speaks ${protocol} (POST ${path}); its servers serve chat ` +
              "completions: use /v1/chat/completions",
            type: "invalid_request_error",
            param: "model",
            code: "unsupported_endpoint",
          },
        },
      });
      expect([
        refusal(() => m.dispatcher.dispatch(request({ model: "M", operation: Operation.RESPONSE }))),
        refusal(() => m.dispatcher.dispatch(request({ model: "M", operation: Operation.COUNT_TOKENS }))),
      ]).to.deep.equal([
        unsupported("the Responses API", "/v1/responses"),
        unsupported("Anthropic's token counting", "/v1/messages/count_tokens"),
      ]);
      expect(routeOf(m, { operation: Operation.MESSAGE })).to.equal("a");
      expect(m.agents.calls).to.deep.equal([]);
    });

    it("answers 400 model_not_supported for an embedding or rerank model asked for chat, and the other way round", () => {
      const m = mesh([
        provider("a", {
          models: [
            { id: "e", serviceType: ServiceType.EMBEDDING },
            { id: "r", serviceType: ServiceType.RERANK },
            { id: "m", serviceType: ServiceType.LLM },
          ],
        }),
      ]);
      const message = (overrides: Partial<DispatchRequest>) =>
        (refusal(() => m.dispatcher.dispatch(request(overrides))).body as { error: { message: string } }).error.message;
      expect([
        message({ model: "e" }),
        message({ model: "r", operation: Operation.EMBEDDING }),
        message({ model: "m", operation: Operation.RERANK }),
      ]).to.deep.equal([
        "Model 'e' is an embedding model; /v1/chat/completions needs an llm model.",
        "Model 'r' is a rerank model; /v1/embeddings needs an embedding model.",
        "Model 'm' is an llm model; /v1/rerank needs a rerank model.",
      ]);
    });

    it("names every other type the model has, after the first one's article", () => {
      const m = mesh([
        provider("a", {
          models: [
            { id: "both", serviceType: ServiceType.STT },
            { id: "both", serviceType: ServiceType.TTS },
          ],
        }),
      ]);
      expect(refusal(() => m.dispatcher.dispatch(request({ model: "both" }))).body).to.deep.equal({
        error: {
          message: "Model 'both' is an stt or tts model; /v1/chat/completions needs an llm model.",
          type: "invalid_request_error",
          param: "model",
          code: "model_not_supported",
        },
      });
    });

    it("never answers with a blank where the type of a model of an unknown service type would go", () => {
      const m = mesh([provider("a", { models: [{ id: "m", serviceType: 9 as ServiceType }] })]);
      const { body } = refusal(() => m.dispatcher.dispatch(request()));
      expect(JSON.stringify(body)).to.not.include("a  model");
    });
  });
});
