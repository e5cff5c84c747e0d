import type { status as GrpcStatus } from "@grpc/grpc-js";

/** CorpusContext is what the cases need to know about the mesh they run against. */
export interface CorpusContext {
  /** apiKey is a user's key whose agent serves the four models below. */
  readonly apiKey: string;
  /** otherKey is another user's key: that user has no providers and sees none of the first user's. */
  readonly otherKey: string;
  /** meshToken is the gateways' credential at the registry and at each other's AgentService. */
  readonly meshToken: string;
  /** providerId is the agent's provider id, owned by the apiKey's user; its agent is attached to the gateway. */
  readonly providerId: string;
  readonly models: {
    readonly llm: string;
    readonly stt: string;
    readonly image: string;
    readonly tts: string;
    /** embedding, rerank and chatOnly are a scripted provider's, owned by the apiKey's user; no case may reach it. */
    readonly embedding: string;
    readonly rerank: string;
    /** chatOnly is an llm model whose provider declares no protocol feature: it serves chat and completions only. */
    readonly chatOnly: string;
  };
  /** userId and otherUserId are the ids of the apiKey's user and of the otherKey's. */
  readonly userId: string;
  readonly otherUserId: string;
  /** spareKeyId is the id of a second key of the apiKey's user, which cases try to revoke as the other user. */
  readonly spareKeyId: string;
  /** sessionId is a signed-in session of the apiKey's user, for the session cookie's cases; no case ends it. */
  readonly sessionId: string;
}

/** ContextValue is a value given as it is, or made from the context when the case runs. */
export type ContextValue = string | ((context: CorpusContext) => string);

/**
 * SessionAuth is a session cookie: its value, and, where given, the X-CSRF-Token header that goes with it and an
 * Authorization header beside it. A case with no Authorization header and no cookie is "none".
 */
export interface SessionAuth {
  readonly session: ContextValue;
  readonly csrf?: ContextValue;
  readonly authorization?: ContextValue;
}

/** ApiKeyHeaderAuth is an `x-api-key` header, as Anthropic's clients send the key. */
export interface ApiKeyHeaderAuth {
  readonly apiKeyHeader: ContextValue;
}

/**
 * Auth is how a case authenticates: the user's valid key, nothing, a raw `authorization` header value, a raw
 * `x-api-key` header value, or a session.
 */
export type Auth = "valid" | "none" | { readonly header: ContextValue } | ApiKeyHeaderAuth | SessionAuth;

/**
 * HttpExpectation is the outcome class of an HTTP case: the status, and (unless the method is HEAD) OpenAI's envelope
 * with, where given, this `type` and `code`, or, with envelope "anthropic", Anthropic's envelope with this `type` (it
 * has no code or param). reachesModel marks a case that is valid by design past the gateway: the model server sees it
 * (and may refuse it); every other case must never reach a model server.
 */
export interface HttpExpectation {
  readonly status: number;
  readonly envelope?: "anthropic";
  /** bare marks an answer Node writes itself, with no body to hold an envelope. */
  readonly bare?: true;
  readonly type?: string;
  readonly code?: string | null;
  readonly param?: string | null;
  readonly reachesModel?: boolean;
  /**
   * closed marks a raw case that rightly gets no HTTP/1.1 answer: the connection closes at once (the public port takes
   * an HTTP/2 preface as HTTP/2, and answers bad framing after it with GOAWAY). status is then unused.
   */
  readonly closed?: true;
}

/** HttpCase is one request to the gateway's HTTP façade, sent with node:http. */
export interface HttpCase {
  readonly kind: "http";
  readonly name: string;
  readonly method: string;
  /** path is the path and query; a function where it names something the mesh made, a provider's id. */
  readonly path: ContextValue;
  readonly auth: Auth;
  readonly headers?: Readonly<Record<string, string>>;
  /** body builds the request body when the case runs, so big bodies live only while they are sent. */
  readonly body?: (context: CorpusContext) => Buffer;
  readonly expect: HttpExpectation;
}

/** RawHttpCase is bytes written straight to the gateway's HTTP socket, for framing node:http would refuse to send. */
export interface RawHttpCase {
  readonly kind: "raw";
  readonly name: string;
  /** bytes builds the whole request, head and body. */
  readonly bytes: (context: CorpusContext) => Buffer;
  readonly expect: HttpExpectation;
}

/**
 * GrpcTarget is the server a gRPC case calls: the registry, the gateway's gRPC port (InferenceService for users,
 * AgentService for the other gateways), or the gateway's public port, where agents attach over HTTP/2.
 */
export type GrpcTarget = "registry" | "gateway" | "link";

/** GrpcCredential is the `authorization` metadata a gRPC case sends. */
export type GrpcCredential = "none" | "user" | "other-user" | "mesh" | { readonly header: string };

/**
 * GrpcMethodKind is how a case's call is made: one message each way, one message and a stream back, or (Attach) one
 * message on a stream that the client ends once the server has answered, or the server ends it first.
 */
export type GrpcMethodKind = "unary" | "server_streaming" | "bidi_streaming";

/**
 * GrpcExpectation is the outcome class of a gRPC case: the status code (one of several where the contract allows
 * either). inBandStatus is for calls that end OK with the provider's own 4xx answer in the stream.
 */
export interface GrpcExpectation {
  readonly code: GrpcStatus | readonly GrpcStatus[];
  readonly inBandStatus?: number;
  readonly reachesModel?: boolean;
}

/** GrpcCase is one call with raw request bytes through a grpc-js generic client (identity serializers). */
export interface GrpcCase {
  readonly kind: "grpc";
  readonly name: string;
  readonly target: GrpcTarget;
  /** path is the full method path, "/infermesh.v1.RegistryService/Heartbeat". */
  readonly path: string;
  readonly methodKind: GrpcMethodKind;
  readonly credential: GrpcCredential;
  /** extraMetadata are more metadata entries, added after the credential. */
  readonly extraMetadata?: (context: CorpusContext) => readonly (readonly [key: string, value: string])[];
  readonly message: (context: CorpusContext) => Buffer;
  readonly expect: GrpcExpectation;
}

/** BadInputCase is one case of the corpus. */
export type BadInputCase = HttpCase | RawHttpCase | GrpcCase;
