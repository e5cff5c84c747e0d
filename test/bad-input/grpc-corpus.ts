import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { AccountService, UsageGroup, UsageScope } from "../../gen/infermesh/v1/accounts_pb.js";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { AgentService, type InferenceCallSchema, InferenceService, MediaRole, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { AgentLinkService } from "../../gen/infermesh/v1/link_pb.js";
import { RegistryService, Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import { AGENT_KEY_METADATA } from "../../services/shared/heartbeat-relay.js";
import { MiB } from "./bodies.js";
import type { CorpusContext, GrpcCase, GrpcCredential, GrpcExpectation, GrpcMethodKind, GrpcTarget } from "./corpus-types.js";

// The gRPC half of the bad-input corpus: every RegistryService and AccountService method, InferenceService.Infer and
// AgentService.Infer (the one gateways forward to each other) at the gateway's gRPC port, and AgentLinkService.Attach
// on the gateway's public port, where agents attach: raw protobuf bytes through a generic client.

function encode<S extends DescMessage>(schema: S, init: MessageInitShape<S>): Buffer {
  const message = toBinary(schema, create(schema, init));
  return Buffer.from(message.buffer, message.byteOffset, message.byteLength);
}

/** MALFORMED are byte strings that are not a protobuf message of any type. */
const MALFORMED: readonly { readonly name: string; readonly bytes: Buffer }[] = [
  { name: "a varint eleven bytes long", bytes: Buffer.alloc(11, 0xff) },
  { name: "a length-delimited field cut short", bytes: Buffer.from([0x0a, 0x10, 0x61, 0x62]) },
  { name: "an illegal wire type", bytes: Buffer.from([0x0f, 0x01]) },
];

/** UNKNOWN is an enum number no enum of the contract defines (the cast lets it into any enum field). */
const UNKNOWN = 99 as never;

const badArgument: GrpcExpectation = { code: status.INVALID_ARGUMENT };
const alreadyExists: GrpcExpectation = { code: status.ALREADY_EXISTS };
const notFound: GrpcExpectation = { code: status.NOT_FOUND };
const unimplemented: GrpcExpectation = { code: status.UNIMPLEMENTED };
const unauthenticated: GrpcExpectation = { code: status.UNAUTHENTICATED };
const unavailable: GrpcExpectation = { code: status.UNAVAILABLE };
/** undecodable: a message that is not protobuf is bad input, whoever sent it. */
const undecodable: GrpcExpectation = { code: [status.INVALID_ARGUMENT] };

type MethodSpec = {
  readonly name: string;
  readonly path: string;
  readonly methodKind: GrpcMethodKind;
  readonly target: GrpcTarget;
  /** credential is the one a well-formed call of this method needs. */
  readonly credential: GrpcCredential;
  readonly valid: (context: CorpusContext) => Buffer;
};

const REGISTRY = RegistryService.method;
const PNG_BYTES = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
type HeartbeatInit = MessageInitShape<typeof REGISTRY.heartbeat.input>;
const heartbeatInit = (c: CorpusContext, init: HeartbeatInit = {}): HeartbeatInit => ({
  providerId: "bad-input-probe",
  name: "probe",
  models: [{ id: c.models.llm, serviceType: ServiceType.LLM }],
  ...init,
});
const heartbeat = (c: CorpusContext, init: HeartbeatInit = {}) => encode(REGISTRY.heartbeat.input, heartbeatInit(c, init));
/** ATTACHED is where a relaying gateway says an agent is attached; only a gateway, with the mesh token, may say it. */
const ATTACHED = { endpoint: "10.0.0.5:7100", gatewayId: "gateway-probe", linkId: "link-probe" } as const;
/** relayedFor is the metadata that goes with the mesh token on a relayed heartbeat: the agent's key. */
const relayedFor =
  (key: (c: CorpusContext) => string): GrpcCase["extraMetadata"] =>
  (c) => [[AGENT_KEY_METADATA, key(c)]];
/** attachFrame is an agent's first frame on its link: a heartbeat. */
const attachFrame = (c: CorpusContext, init: HeartbeatInit = {}) =>
  encode(AgentLinkService.method.attach.input, { frame: { case: "heartbeat", value: heartbeatInit(c, init) } });

type CallInit = MessageInitShape<typeof InferenceCallSchema>;

function callInit(c: CorpusContext, init: CallInit = {}): CallInit {
  return {
    operation: Operation.CHAT_COMPLETION,
    model: c.models.llm,
    requestId: "bad-input",
    body: Buffer.from(JSON.stringify({ model: c.models.llm, messages: [{ role: "user", content: "hi" }], max_tokens: 1 })),
    ...init,
  };
}
/** newOperation is a call of an operation for a model, with a body that names the model. */
function newOperation(operation: Operation, model: string): CallInit {
  return { operation, model, body: Buffer.from(JSON.stringify({ model, input: "hi", messages: [{ role: "user", content: "hi" }] })) };
}
/** peerInfer is a call one gateway forwards to the gateway holding the provider's link. */
const peerInfer = (c: CorpusContext, init: CallInit = {}, providerId = c.providerId) =>
  encode(AgentService.method.infer.input, { providerId, call: callInit(c, init) });
const gatewayInfer = (c: CorpusContext, init: CallInit = {}) => encode(InferenceService.method.infer.input, { call: callInit(c, init) });

function registryMethod(name: string, credential: GrpcCredential, valid: MethodSpec["valid"], streaming = false): MethodSpec {
  const methodKind = streaming ? "server_streaming" : "unary";
  return { name, path: `/infermesh.v1.RegistryService/${name}`, methodKind, target: "registry", credential, valid };
}

const ACCOUNTS = AccountService.method;
/** STRONG_PASSWORD passes the password rule (8 characters or more), so that only the case's one fault is left. */
const STRONG_PASSWORD = "correct horse battery";
/** NO_SUCH_USER_ID is a user id the store never made (it makes UUIDs). */
const NO_SUCH_USER_ID = "no-such-user-id";

function accountMethod(name: string, valid: MethodSpec["valid"]): MethodSpec {
  return {
    name: `AccountService.${name}`,
    path: `/infermesh.v1.AccountService/${name}`,
    methodKind: "unary",
    target: "registry",
    credential: "mesh",
    valid,
  };
}

const METHODS: readonly MethodSpec[] = [
  // Valid and harmless: made-up names and ids, so that nothing of the corpus's users changes should a check let one
  // of these through.
  accountMethod("CreateUser", () => encode(ACCOUNTS.createUser.input, { userName: "bad-input-probe" })),
  accountMethod("ListUsers", () => encode(ACCOUNTS.listUsers.input, {})),
  accountMethod("SetUserDisabled", () => encode(ACCOUNTS.setUserDisabled.input, { userName: "bad-input-nobody", disabled: true })),
  accountMethod("SignUp", () => encode(ACCOUNTS.signUp.input, { userName: "bad-input-probe", password: STRONG_PASSWORD })),
  accountMethod("AcceptInvite", () => encode(ACCOUNTS.acceptInvite.input, { inviteToken: "no-such-invite", password: STRONG_PASSWORD })),
  accountMethod("CreateSignInLink", () => encode(ACCOUNTS.createSignInLink.input, { userName: "bad-input-nobody" })),
  accountMethod("UseSignInLink", () => encode(ACCOUNTS.useSignInLink.input, { token: "no-such-sign-in-link" })),
  accountMethod("CheckPassword", () => encode(ACCOUNTS.checkPassword.input, { userName: "bad-input-nobody", password: STRONG_PASSWORD })),
  accountMethod("CreateSession", () => encode(ACCOUNTS.createSession.input, { userId: NO_SUCH_USER_ID })),
  accountMethod("ResolveSession", () => encode(ACCOUNTS.resolveSession.input, { sessionId: "no-such-session" })),
  accountMethod("RevokeSessions", () => encode(ACCOUNTS.revokeSessions.input, { sessionId: "no-such-session" })),
  accountMethod("RecordUsage", () => encode(ACCOUNTS.recordUsage.input, { records: [] })),
  accountMethod("QueryUsage", () => encode(ACCOUNTS.queryUsage.input, { userId: NO_SUCH_USER_ID, scope: UsageScope.CALLER })),
  accountMethod("ListOwnProviders", () => encode(ACCOUNTS.listOwnProviders.input, { userId: NO_SUCH_USER_ID })),
  accountMethod("SetProviderPaused", () =>
    encode(ACCOUNTS.setProviderPaused.input, { userId: NO_SUCH_USER_ID, providerId: "no-such-provider", paused: false }),
  ),
  accountMethod("SetProviderSharing", () =>
    encode(ACCOUNTS.setProviderSharing.input, {
      userId: NO_SUCH_USER_ID,
      providerId: "no-such-provider",
      sharing: { visibility: Visibility.PRIVATE },
    }),
  ),
  registryMethod("Heartbeat", "user", (c) => heartbeat(c)),
  registryMethod("Deregister", "user", () => encode(REGISTRY.deregister.input, { providerId: "bad-input-probe" })),
  registryMethod("ListProviders", "mesh", () => encode(REGISTRY.listProviders.input, {})),
  registryMethod("WatchProviders", "mesh", () => Buffer.alloc(0), true),
  registryMethod("Authenticate", "mesh", (c) => encode(REGISTRY.authenticate.input, { apiKey: c.apiKey })),
  registryMethod("CreateApiKey", "mesh", () => encode(REGISTRY.createApiKey.input, { userName: "mallory" })),
  registryMethod("ListApiKeys", "mesh", () => encode(REGISTRY.listApiKeys.input, {})),
  registryMethod("RevokeApiKey", "mesh", () => encode(REGISTRY.revokeApiKey.input, { keyId: "no-such-key" })),
  {
    name: "InferenceService.Infer",
    path: "/infermesh.v1.InferenceService/Infer",
    methodKind: "server_streaming",
    target: "gateway",
    credential: "user",
    valid: gatewayInfer,
  },
  {
    name: "AgentService.Infer",
    path: "/infermesh.v1.AgentService/Infer",
    methodKind: "server_streaming",
    target: "gateway",
    credential: "mesh",
    valid: (c) => peerInfer(c),
  },
  {
    name: "AgentLinkService.Attach",
    path: "/infermesh.v1.AgentLinkService/Attach",
    methodKind: "bidi_streaming",
    target: "link",
    credential: "user",
    valid: (c) => attachFrame(c),
  },
];

const BAD_CREDENTIALS: readonly { readonly name: string; readonly credential: GrpcCredential }[] = [
  { name: "no authorization metadata", credential: "none" },
  { name: "Basic credentials", credential: { header: "Basic YWxpY2U6c2VjcmV0" } },
  { name: "an unknown bearer token", credential: { header: "Bearer not-a-real-credential" } },
  { name: "'Bearer' without a token", credential: { header: "Bearer " } },
];

function grpcCase(
  method: MethodSpec,
  name: string,
  credential: GrpcCredential,
  message: (c: CorpusContext) => Buffer,
  expect: GrpcExpectation,
  extraMetadata?: GrpcCase["extraMetadata"],
): GrpcCase {
  return {
    kind: "grpc",
    name: `${method.name}: ${name}`,
    target: method.target,
    path: method.path,
    methodKind: method.methodKind,
    credential,
    ...(extraMetadata ? { extraMetadata } : {}),
    message,
    expect,
  };
}

/** everyMethodCases send each method a valid message with bad credentials, and malformed bytes with good ones. */
function everyMethodCases(): GrpcCase[] {
  return METHODS.flatMap((method) => [
    ...BAD_CREDENTIALS.map(({ name, credential }) => grpcCase(method, name, credential, method.valid, unauthenticated)),
    ...MALFORMED.map(({ name, bytes }) => grpcCase(method, `malformed protobuf: ${name}`, method.credential, () => bytes, undecodable)),
  ]);
}

const method = (name: string) => METHODS.find((m) => m.name === name) as MethodSpec;

function heartbeatCases(): GrpcCase[] {
  const hb = method("Heartbeat");
  const send = (name: string, init: (c: CorpusContext) => HeartbeatInit, expect = badArgument, credential: GrpcCredential = "user") =>
    grpcCase(hb, name, credential, (c) => heartbeat(c, init(c)), expect);
  /** relay sends a heartbeat as a gateway relays an attached agent's: the mesh token, and the agent's key beside it. */
  const relay = (
    name: string,
    init: (c: CorpusContext) => HeartbeatInit,
    expect = badArgument,
    agentKey = (c: CorpusContext) => c.apiKey,
  ) => grpcCase(hb, `relayed: ${name}`, "mesh", (c) => heartbeat(c, { ...ATTACHED, ...init(c) }), expect, relayedFor(agentKey));
  const model = (c: CorpusContext, init: object) => [{ id: c.models.llm, serviceType: ServiceType.LLM, ...init }];
  return [
    grpcCase(hb, "an empty message", "user", () => Buffer.alloc(0), badArgument),
    send("a provider id with a space", () => ({ providerId: "has space" })),
    send("a provider id of 129 characters", () => ({ providerId: "p".repeat(129) })),
    send("a provider id of 10 KB", () => ({ providerId: "p".repeat(10_000) })),
    send("a provider id with a slash", () => ({ providerId: "../etc" })),
    send("an empty provider id", () => ({ providerId: "" })),
    grpcCase(hb, "invalid UTF-8 in the provider id", "user", () => Buffer.from([0x0a, 0x03, 0x61, 0xff, 0xfe]), undecodable),
    // Only a gateway relaying an attached agent's heartbeat may say where the agent is attached.
    send("a user naming an endpoint for gateways to dial", () => ({ endpoint: "10.0.0.5:7100" })),
    send("a user naming the gateway holding the link", () => ({ gatewayId: ATTACHED.gatewayId })),
    send("a user naming the link", () => ({ linkId: ATTACHED.linkId })),
    ...["nohost", ":80", "host:0", "host:65536", "host:abc", "[::1]", "a b:80", "http://x:80", "-bad-.example:80"].map((endpoint) =>
      relay(`endpoint '${endpoint}'`, () => ({ endpoint })),
    ),
    relay("a gateway id of 257 characters", () => ({ gatewayId: "g".repeat(257) })),
    relay("a link id of 257 characters", () => ({ linkId: "l".repeat(257) })),
    relay(
      "a garbage agent key",
      () => ({}),
      unauthenticated,
      () => "im_0000000000000000_not-a-key",
    ),
    relay(
      "another user's provider id",
      (c) => ({ providerId: c.providerId }),
      unauthenticated,
      (c) => c.otherKey,
    ),
    send("a model with an empty id", (c) => ({ models: model(c, { id: "" }) })),
    send("a model id of spaces", (c) => ({ models: model(c, { id: "   " }) })),
    send("a model id of 257 characters", (c) => ({ models: model(c, { id: "m".repeat(257) }) })),
    send("the same model twice, differently cased", (c) => ({
      models: [...model(c, {}), ...model(c, { id: c.models.llm.toUpperCase() })],
    })),
    send("service type unspecified", (c) => ({ models: model(c, { serviceType: ServiceType.UNSPECIFIED }) })),
    send("service type 99", (c) => ({ models: model(c, { serviceType: UNKNOWN }) })),
    send("modality 99", (c) => ({ models: model(c, { inputModalities: [UNKNOWN] }) })),
    send("modality unspecified", (c) => ({ models: model(c, { outputModalities: [0] }) })),
    send("65 features", (c) => ({ models: model(c, { supportedFeatures: Array.from({ length: 65 }, (_, i) => `f${i}`) }) })),
    send("a feature of 65 characters", (c) => ({ models: model(c, { supportedFeatures: ["f".repeat(65)] }) })),
    send("an engine of 65 characters", (c) => ({ models: model(c, { engine: "e".repeat(65) }) })),
    send("1,025 models", () => ({ models: Array.from({ length: 1025 }, (_, i) => ({ id: `m${i}`, serviceType: ServiceType.LLM })) })),
    send("state 99", () => ({ state: UNKNOWN })),
    send("sharing visibility 99", () => ({ sharing: { visibility: UNKNOWN } })),
    send("a name of 257 characters", () => ({ name: "n".repeat(257) })),
    send("a version of 257 characters", () => ({ version: "v".repeat(257) })),
    send("the mesh token instead of the owner's key", () => ({}), unauthenticated, "mesh"),
    send("another user's provider id", (c) => ({ providerId: c.providerId }), unauthenticated, "other-user"),
    send("a 5 MiB message over the registry's 4 MiB limit", () => ({ name: "n".repeat(5 * MiB) }), { code: status.RESOURCE_EXHAUSTED }),
    grpcCase(hb, "a 60 KB authorization value", { header: `Bearer ${"k".repeat(60 * 1024)}` }, (c) => heartbeat(c), unauthenticated),
    // HTTP/2 itself refuses a header block over the server's 64 KiB list size (RST_STREAM, which grpc-js reports as
    // INTERNAL): the call never reaches a handler, and the server goes on serving.
    grpcCase(hb, "a 100 KB authorization value", { header: `Bearer ${"k".repeat(100 * 1024)}` }, (c) => heartbeat(c), {
      code: [status.RESOURCE_EXHAUSTED, status.INTERNAL],
    }),
    grpcCase(
      hb,
      "a second metadata entry of 8 KB",
      "user",
      () => Buffer.alloc(0),
      badArgument,
      () => [["x-padding", "p".repeat(8 * 1024)]],
    ),
    // The agent-key metadata makes a relay only beside the mesh token: with a user's key it is no relay at all.
    grpcCase(
      hb,
      "the agent-key metadata with a user's key naming an endpoint",
      "user",
      (c) => heartbeat(c, ATTACHED),
      badArgument,
      relayedFor((c) => c.apiKey),
    ),
  ];
}

function registryCases(): GrpcCase[] {
  const dereg = method("Deregister");
  const auth = method("Authenticate");
  const createKey = method("CreateApiKey");
  const revoke = method("RevokeApiKey");
  const deregister = (providerId: string) => () => encode(REGISTRY.deregister.input, { providerId });
  const authenticate = (apiKey: string) => () => encode(REGISTRY.authenticate.input, { apiKey });
  const create =
    (userName: string, label = "") =>
    () =>
      encode(REGISTRY.createApiKey.input, { userName, label });
  const revokeKey = (keyId: string) => () => encode(REGISTRY.revokeApiKey.input, { keyId });
  return [
    grpcCase(dereg, "an empty provider id", "user", deregister(""), badArgument),
    grpcCase(dereg, "a provider id with spaces", "user", deregister("not an id"), badArgument),
    grpcCase(dereg, "another user's provider", "other-user", (c) => deregister(c.providerId)(), unauthenticated),
    // A gateway deregisters for a link it held; a link the agent is not on takes nothing offline (the runs after check).
    grpcCase(
      dereg,
      "the mesh token for a link the provider is not on",
      "mesh",
      (c) => encode(REGISTRY.deregister.input, { providerId: c.providerId, linkId: "link-probe" }),
      { code: status.OK },
    ),
    grpcCase(auth, "a user's key instead of the mesh token", "user", (c) => authenticate(c.apiKey)(), unauthenticated),
    grpcCase(auth, "an empty API key", "mesh", authenticate(""), unauthenticated),
    grpcCase(auth, "a garbage API key", "mesh", authenticate("sk-garbage"), unauthenticated),
    grpcCase(auth, "a 100 KB API key", "mesh", authenticate("k".repeat(100 * 1024)), unauthenticated),
    grpcCase(createKey, "a user creating a key for another user", "user", create("mallory"), { code: status.PERMISSION_DENIED }),
    grpcCase(createKey, "an empty user name", "mesh", create(""), badArgument),
    grpcCase(createKey, "a user name with a space", "mesh", create("no spaces allowed"), badArgument),
    grpcCase(createKey, "a user name of 10 KB", "mesh", create("u".repeat(10_000)), badArgument),
    grpcCase(createKey, "a label of 100 KB", "mesh", create("label-victim", "l".repeat(100 * 1024)), badArgument),
    grpcCase(revoke, "an empty key id", "mesh", revokeKey(""), notFound),
    grpcCase(revoke, "an unknown key id", "mesh", revokeKey("no-such-key"), notFound),
    grpcCase(revoke, "a key id of 10 KB", "mesh", revokeKey("k".repeat(10_000)), notFound),
    grpcCase(revoke, "a user revoking a key not theirs", "other-user", revokeKey("no-such-key"), notFound),
    grpcCase(
      registryMethod("NoSuchMethod", "mesh", () => Buffer.alloc(0)),
      "an unknown method",
      "mesh",
      () => Buffer.alloc(0),
      unimplemented,
    ),
    grpcCase(
      {
        ...registryMethod("Heartbeat", "mesh", () => Buffer.alloc(0)),
        name: "infermesh.v1.NoSuchService",
        path: "/infermesh.v1.NoSuchService/Heartbeat",
      },
      "an unknown service",
      "mesh",
      () => Buffer.alloc(0),
      unimplemented,
    ),
    grpcCase(
      registryMethod("heartbeat", "mesh", () => Buffer.alloc(0)),
      "a method name in the wrong case",
      "mesh",
      () => Buffer.alloc(0),
      unimplemented,
    ),
    grpcCase(
      {
        ...registryMethod("Heartbeat", "mesh", () => Buffer.alloc(0)),
        name: "infermesh.v2.RegistryService",
        path: "/infermesh.v2.RegistryService/Heartbeat",
      },
      "a package version the contract does not have",
      "mesh",
      () => Buffer.alloc(0),
      unimplemented,
    ),
  ];
}

/**
 * accountCases are bad calls of AccountService, which only the mesh calls (gateways for their members, and operators'
 * tools): a member's own key is refused, whatever it asks.
 */
function accountCases(): GrpcCase[] {
  const accountOnly = METHODS.filter((m) => m.path.startsWith("/infermesh.v1.AccountService/"));
  const send = <S extends DescMessage>(
    name: string,
    caseName: string,
    schema: S,
    init: (c: CorpusContext) => MessageInitShape<S>,
    expect: GrpcExpectation,
  ) => grpcCase(method(`AccountService.${name}`), caseName, "mesh", (c) => encode(schema, init(c)), expect);
  const createUser = (caseName: string, userName: string, expect = badArgument) =>
    send("CreateUser", caseName, ACCOUNTS.createUser.input, () => ({ userName }), expect);
  const signUp = (caseName: string, userName: string, password: string, expect = badArgument) =>
    send("SignUp", caseName, ACCOUNTS.signUp.input, () => ({ userName, password }), expect);
  const acceptInvite = (caseName: string, inviteToken: string, password: string, expect: GrpcExpectation) =>
    send("AcceptInvite", caseName, ACCOUNTS.acceptInvite.input, () => ({ inviteToken, password }), expect);
  const signInLink = (caseName: string, userName: string, expect: GrpcExpectation) =>
    send("CreateSignInLink", caseName, ACCOUNTS.createSignInLink.input, () => ({ userName }), expect);
  const useSignInLink = (caseName: string, token: string) =>
    send("UseSignInLink", caseName, ACCOUNTS.useSignInLink.input, () => ({ token }), unauthenticated);
  const query = (caseName: string, init: (c: CorpusContext) => MessageInitShape<typeof ACCOUNTS.queryUsage.input>) =>
    send("QueryUsage", caseName, ACCOUNTS.queryUsage.input, init, badArgument);
  const paused = ACCOUNTS.setProviderPaused.input;
  const sharing = ACCOUNTS.setProviderSharing.input;
  return [
    ...accountOnly.map((m) => grpcCase(m, "a user's API key instead of the mesh token", "user", m.valid, unauthenticated)),
    createUser("a user name with a space", "has space"),
    createUser("an empty user name", ""),
    createUser("a user name of 65 characters", "u".repeat(65)),
    createUser("a user name with a slash", "../etc"),
    createUser("a user name outside ASCII", "名前"),
    createUser("a taken user name", "alice", alreadyExists),
    send(
      "SetUserDisabled",
      "a user nobody has",
      ACCOUNTS.setUserDisabled.input,
      () => ({ userName: "bad-input-nobody", disabled: true }),
      notFound,
    ),
    send(
      "SetUserDisabled",
      "enabling a user nobody has",
      ACCOUNTS.setUserDisabled.input,
      () => ({ userName: "bad-input-nobody" }),
      notFound,
    ),
    signUp("a password of 7 characters", "bad-input-weak", "1234567"),
    signUp("an empty password", "bad-input-weak", ""),
    signUp("a password of 5,000 characters", "bad-input-long", "p".repeat(5000)),
    signUp("a user name with a space", "has space", STRONG_PASSWORD),
    signUp("a taken user name", "alice", STRONG_PASSWORD, alreadyExists),
    acceptInvite("an invite token nobody issued", "no-such-invite", STRONG_PASSWORD, notFound),
    acceptInvite("an empty invite token", "", STRONG_PASSWORD, notFound),
    acceptInvite("a password of 7 characters", "no-such-invite", "1234567", badArgument),
    signInLink("a user nobody has", "bad-input-nobody", notFound),
    signInLink("an empty user name", "", badArgument),
    signInLink("a user name of 5,000 characters", "u".repeat(5000), badArgument),
    signInLink("a user name with a slash", "../etc", badArgument),
    useSignInLink("a token nobody issued", "no-such-sign-in-link"),
    useSignInLink("a well-formed token nobody issued", "A".repeat(43)),
    useSignInLink("an empty token", ""),
    useSignInLink("a token of 5,000 characters", "t".repeat(5000)),
    send(
      "CheckPassword",
      "a wrong password",
      ACCOUNTS.checkPassword.input,
      () => ({ userName: "alice", password: "not alice's password" }),
      unauthenticated,
    ),
    send(
      "CheckPassword",
      "a password of 5,000 characters",
      ACCOUNTS.checkPassword.input,
      () => ({ userName: "alice", password: "p".repeat(5000) }),
      unauthenticated,
    ),
    // The store refuses a session to a user it does not know or has disabled alike.
    send("CreateSession", "a user nobody has", ACCOUNTS.createSession.input, () => ({ userId: NO_SUCH_USER_ID }), {
      code: status.FAILED_PRECONDITION,
    }),
    send(
      "ResolveSession",
      "a session nobody started",
      ACCOUNTS.resolveSession.input,
      () => ({ sessionId: "no-such-session" }),
      unauthenticated,
    ),
    send("ResolveSession", "an empty session id", ACCOUNTS.resolveSession.input, () => ({ sessionId: "" }), unauthenticated),
    send(
      "RecordUsage",
      "10,001 records, over the 10,000 of a batch",
      ACCOUNTS.recordUsage.input,
      () => ({ records: Array.from({ length: 10_001 }, () => ({})) }),
      badArgument,
    ),
    query("group 99", (c) => ({ userId: c.userId, groupBy: [UNKNOWN] })),
    query("group unspecified", (c) => ({ userId: c.userId, groupBy: [UsageGroup.UNSPECIFIED] })),
    // UNSPECIFIED reads as CALLER, as the contract says; a number it does not define is bad input, as group 99 is.
    query("scope 99", (c) => ({ userId: c.userId, scope: UNKNOWN })),
    query("the caller's scope without a user", () => ({ scope: UsageScope.CALLER })),
    query("the provider owner's scope without a user", () => ({ scope: UsageScope.PROVIDER_OWNER })),
    send(
      "SetProviderPaused",
      "a provider nobody has",
      paused,
      (c) => ({ userId: c.userId, providerId: "no-such-provider", paused: true }),
      notFound,
    ),
    send(
      "SetProviderPaused",
      "another user's provider",
      paused,
      (c) => ({ userId: c.otherUserId, providerId: c.providerId, paused: false }),
      notFound,
    ),
    send(
      "SetProviderPaused",
      "a user nobody has",
      paused,
      (c) => ({ userId: NO_SUCH_USER_ID, providerId: c.providerId, paused: false }),
      notFound,
    ),
    send(
      "SetProviderSharing",
      "visibility unspecified",
      sharing,
      (c) => ({ userId: c.userId, providerId: c.providerId, sharing: { visibility: Visibility.UNSPECIFIED } }),
      badArgument,
    ),
    send(
      "SetProviderSharing",
      "visibility 99",
      sharing,
      (c) => ({ userId: c.userId, providerId: c.providerId, sharing: { visibility: UNKNOWN } }),
      badArgument,
    ),
    send("SetProviderSharing", "no sharing", sharing, (c) => ({ userId: c.userId, providerId: c.providerId }), badArgument),
    send(
      "SetProviderSharing",
      "another user's provider",
      sharing,
      (c) => ({ userId: c.otherUserId, providerId: c.providerId, sharing: { visibility: Visibility.PRIVATE } }),
      notFound,
    ),
    send(
      "SetProviderSharing",
      "a provider nobody has",
      sharing,
      (c) => ({ userId: c.userId, providerId: "no-such-provider", sharing: { visibility: Visibility.PRIVATE } }),
      notFound,
    ),
  ];
}

/**
 * inferCases are bad calls of Infer at the gateway: InferenceService for users, and AgentService, which another
 * gateway calls to have a call go down the link of an agent attached here (and so past the agent's own checks).
 */
function inferCases(): GrpcCase[] {
  const gateway = method("InferenceService.Infer");
  const agent = method("AgentService.Infer");
  const audio = { role: MediaRole.AUDIO, data: Buffer.from("RIFF....WAVE") };
  const transcription = (c: CorpusContext, fields: string, media: CallInit["media"]): CallInit => ({
    operation: Operation.TRANSCRIPTION,
    model: c.models.stt,
    body: Buffer.from(fields),
    ...(media ? { media } : {}),
  });
  const edit = (c: CorpusContext, media: CallInit["media"]): CallInit => ({
    operation: Operation.IMAGE_EDIT,
    model: c.models.image,
    body: Buffer.from('{"prompt":"x"}'),
    ...(media ? { media } : {}),
  });
  const routed = (name: string, init: (c: CorpusContext) => CallInit, expect: GrpcExpectation, credential: GrpcCredential = "user") =>
    grpcCase(gateway, name, credential, (c) => gatewayInfer(c, init(c)), expect);
  const both = (name: string, init: (c: CorpusContext) => CallInit, atGateway: GrpcExpectation, atAgent: GrpcExpectation): GrpcCase[] => [
    grpcCase(gateway, name, "user", (c) => gatewayInfer(c, init(c)), atGateway),
    grpcCase(agent, name, "mesh", (c) => peerInfer(c, init(c)), atAgent),
  ];
  return [
    grpcCase(gateway, "the mesh token instead of an API key", "mesh", (c) => gatewayInfer(c), unauthenticated),
    grpcCase(agent, "the provider owner's API key instead of the mesh token", "user", (c) => peerInfer(c), unauthenticated),
    grpcCase(agent, "another user's API key instead of the mesh token", "other-user", (c) => peerInfer(c), unauthenticated),
    grpcCase(gateway, "no call", "user", () => Buffer.alloc(0), badArgument),
    grpcCase(agent, "no call", "mesh", (c) => encode(AgentService.method.infer.input, { providerId: c.providerId }), badArgument),
    grpcCase(agent, "a provider that is not online", "mesh", (c) => peerInfer(c, {}, "no-such-provider"), unavailable),
    ...both("operation unspecified", () => ({ operation: Operation.UNSPECIFIED }), badArgument, unimplemented),
    ...both("operation 99", () => ({ operation: UNKNOWN }), badArgument, unimplemented),
    ...both("an empty model", () => ({ model: "" }), badArgument, badArgument),
    ...both("an unknown model", () => ({ model: "gpt-no-such-model" }), notFound, notFound),
    ...both("an stt model for a chat", (c) => ({ model: c.models.stt }), badArgument, notFound),
    ...both("an llm model for a transcription", () => ({ operation: Operation.TRANSCRIPTION, media: [audio] }), badArgument, notFound),
    grpcCase(gateway, "another user's model", "other-user", (c) => gatewayInfer(c), notFound),
    // The operations of the embeddings, rerank, Responses and Anthropic routes route as their HTTP routes do: by service
    // type, and by the protocol feature the model's providers must declare.
    routed("an llm model for an embedding", (c) => newOperation(Operation.EMBEDDING, c.models.llm), badArgument),
    routed("an embedding model for a chat", (c) => newOperation(Operation.CHAT_COMPLETION, c.models.embedding), badArgument),
    routed("an embedding model for a rerank", (c) => newOperation(Operation.RERANK, c.models.embedding), badArgument),
    routed("an unknown rerank model", () => newOperation(Operation.RERANK, "no-such-reranker"), notFound),
    routed(
      "a response from a model whose providers speak no Responses API",
      (c) => newOperation(Operation.RESPONSE, c.models.chatOnly),
      badArgument,
    ),
    routed(
      "a message from a model whose providers speak no Messages API",
      (c) => newOperation(Operation.MESSAGE, c.models.chatOnly),
      badArgument,
    ),
    routed(
      "token counting by a model whose providers do not count tokens",
      (c) => newOperation(Operation.COUNT_TOKENS, c.models.chatOnly),
      badArgument,
    ),
    routed("another user's model for a message", (c) => newOperation(Operation.MESSAGE, c.models.chatOnly), notFound, "other-user"),
    routed(
      "a translation whose form fields are not JSON",
      (c) => ({ ...transcription(c, "model=x", [audio]), operation: Operation.TRANSLATION }),
      badArgument,
    ),
    routed(
      "a translation whose form field is a number",
      (c) => ({ ...transcription(c, '{"temperature":0}', [audio]), operation: Operation.TRANSLATION }),
      badArgument,
    ),
    routed(
      "an llm model for a translation",
      (c) => ({
        ...transcription(c, JSON.stringify({ model: c.models.llm }), [audio]),
        operation: Operation.TRANSLATION,
        model: c.models.llm,
      }),
      badArgument,
    ),
    routed(
      "an embedding body that is not JSON",
      (c) => ({ ...newOperation(Operation.EMBEDDING, c.models.embedding), body: Buffer.from("{") }),
      badArgument,
    ),
    ...both("a transcription without audio", (c) => transcription(c, `{"model":"${c.models.stt}"}`, []), badArgument, badArgument),
    ...both("a transcription whose form fields are not JSON", (c) => transcription(c, "model=x", [audio]), badArgument, badArgument),
    ...both(
      "a transcription whose form field is a number",
      (c) => transcription(c, '{"temperature":0}', [audio]),
      badArgument,
      badArgument,
    ),
    ...both("an image edit with only a mask", (c) => edit(c, [{ role: MediaRole.MASK, data: PNG_BYTES }]), badArgument, badArgument),
    ...both("an image edit with audio", (c) => edit(c, [{ role: MediaRole.IMAGE, data: PNG_BYTES }, audio]), badArgument, badArgument),
    // A call whose deadline has passed is not sent down the link at all.
    ...both(
      "a deadline in the past",
      () => ({ deadline: timestampFromMs(Date.now() - 60_000) }),
      { code: status.DEADLINE_EXCEEDED },
      { code: status.DEADLINE_EXCEEDED },
    ),
    grpcCase(gateway, "a chat body that is not JSON", "user", (c) => gatewayInfer(c, { body: Buffer.from("{") }), badArgument),
    grpcCase(gateway, "a chat body that is a JSON array", "user", (c) => gatewayInfer(c, { body: Buffer.from("[]") }), badArgument),
    grpcCase(gateway, "an empty chat body", "user", (c) => gatewayInfer(c, { body: Buffer.alloc(0) }), badArgument),
    grpcCase(
      gateway,
      "a chat body that is not JSON, model differently cased",
      "user",
      (c) => {
        return gatewayInfer(c, { model: c.models.llm.toUpperCase(), body: Buffer.from("{") });
      },
      badArgument,
    ),
    grpcCase(
      gateway,
      "a chat body of invalid UTF-8",
      "user",
      (c) => gatewayInfer(c, { body: Buffer.from('{"\xff":1}', "latin1") }),
      badArgument,
    ),
    // The agent's only callers are gateways, which validate: it relays their JSON as sent. llama-server (and so the
    // simulator) answers JSON it cannot parse with a 500, which the agent reports in band as upstream_error.
    grpcCase(
      agent,
      "a chat body that is not JSON goes to the model server as sent",
      "mesh",
      (c) => peerInfer(c, { body: Buffer.from("{") }),
      {
        code: status.OK,
        inBandStatus: 502,
        reachesModel: true,
      },
    ),
  ];
}

/**
 * attachCases are agents attaching wrongly to the gateway's public port. A link's first frame is the agent's
 * heartbeat, which the gateway relays to the registry: what the registry refuses ends the link with its code.
 */
function attachCases(): GrpcCase[] {
  const attach = method("AgentLinkService.Attach");
  const frame = (name: string, init: (c: CorpusContext) => HeartbeatInit, expect: GrpcExpectation, credential: GrpcCredential = "user") =>
    grpcCase(attach, name, credential, (c) => attachFrame(c, init(c)), expect);
  /** elsewhere is a call of another RPC on the public port, which serves Attach only over HTTP/2. */
  const elsewhere = (name: string, path: string): GrpcCase => ({
    ...grpcCase(attach, name, "user", (c) => attachFrame(c), unimplemented),
    path,
  });
  return [
    frame("the mesh token instead of the owner's key", () => ({}), unauthenticated, "mesh"),
    frame("a first heartbeat with a provider id with a space", () => ({ providerId: "has space" }), badArgument),
    frame("a first heartbeat with a model with an empty id", () => ({ models: [{ id: "", serviceType: ServiceType.LLM }] }), badArgument),
    frame("a first heartbeat with service type 99", (c) => ({ models: [{ id: c.models.llm, serviceType: UNKNOWN }] }), badArgument),
    frame("a first heartbeat for another user's provider id", (c) => ({ providerId: c.providerId }), unauthenticated, "other-user"),
    elsewhere("InferenceService.Infer on the public port", "/infermesh.v1.InferenceService/Infer"),
    elsewhere("RegistryService.Heartbeat on the public port", "/infermesh.v1.RegistryService/Heartbeat"),
  ];
}

/** grpcCorpus is every gRPC case. */
export function grpcCorpus(): GrpcCase[] {
  return [...everyMethodCases(), ...heartbeatCases(), ...registryCases(), ...accountCases(), ...inferCases(), ...attachCases()];
}
