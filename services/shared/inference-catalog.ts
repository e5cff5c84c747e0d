import { Modality, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";

/**
 * The mesh's vocabulary, defined once: the service types a provider declares for its models, the modalities of their
 * inputs and outputs, and the operations a call stands for, with the route each is served on and the service type
 * that may serve it. Everything that names, routes on or labels one of these derives it from here.
 */

/** ServiceTypeName is a service type as users spell it: in /v1/models, in `--upstream TYPE=URL`, in heartbeats. */
export type ServiceTypeName = "llm" | "stt" | "image" | "tts" | "embedding" | "rerank";

/** ModalityName is a modality as /v1/models and configuration files spell it. */
export type ModalityName = "text" | "image" | "audio" | "video";

/** ServiceTypeInfo is everything the mesh knows about one service type. */
export interface ServiceTypeInfo {
  readonly name: ServiceTypeName;
  readonly serviceType: ServiceType;
  /** article goes before the name in a sentence, as it is read out: "an llm model", "a tts model". */
  readonly article: "a" | "an";
  /** noun names the type's models in messages to people ("No online provider serving speech-to-text model ..."). */
  readonly noun: string;
  /** inputs and outputs are the modalities of a model that declares none, as inference.club's API defaults them. */
  readonly inputs: readonly Modality[];
  readonly outputs: readonly Modality[];
}

/** SERVICE_TYPES are the service types, in the order they are listed to users. */
export const SERVICE_TYPES: readonly ServiceTypeInfo[] = Object.freeze([
  { name: "llm", serviceType: ServiceType.LLM, article: "an", noun: "model", inputs: [Modality.TEXT], outputs: [Modality.TEXT] },
  {
    name: "stt",
    serviceType: ServiceType.STT,
    article: "an",
    noun: "speech-to-text model",
    inputs: [Modality.AUDIO],
    outputs: [Modality.TEXT],
  },
  {
    name: "image",
    serviceType: ServiceType.IMAGE,
    article: "an",
    noun: "image model",
    inputs: [Modality.TEXT, Modality.IMAGE],
    outputs: [Modality.IMAGE],
  },
  {
    name: "tts",
    serviceType: ServiceType.TTS,
    article: "a",
    noun: "text-to-speech model",
    inputs: [Modality.TEXT],
    outputs: [Modality.AUDIO],
  },
  // Embedding and rerank models write numbers, not content: they have no output modality.
  { name: "embedding", serviceType: ServiceType.EMBEDDING, article: "an", noun: "embedding model", inputs: [Modality.TEXT], outputs: [] },
  { name: "rerank", serviceType: ServiceType.RERANK, article: "a", noun: "rerank model", inputs: [Modality.TEXT], outputs: [] },
] as const satisfies readonly ServiceTypeInfo[]);

/** SERVICE_TYPE_NAMES are the service types' names, for usage messages and flag parsers. */
export const SERVICE_TYPE_NAMES: readonly ServiceTypeName[] = Object.freeze(SERVICE_TYPES.map((info) => info.name));

const TYPE_BY_ENUM = new Map(SERVICE_TYPES.map((info) => [info.serviceType, info]));
const TYPE_BY_NAME = new Map<string, ServiceTypeInfo>(SERVICE_TYPES.map((info) => [info.name, info]));

/** serviceTypeInfo describes a service type; undefined for UNSPECIFIED and numbers from a newer contract. */
export function serviceTypeInfo(serviceType: ServiceType): ServiceTypeInfo | undefined {
  return TYPE_BY_ENUM.get(serviceType);
}

/** serviceTypeOf describes a service type known by name. */
export function serviceTypeOf(name: ServiceTypeName): ServiceTypeInfo {
  return TYPE_BY_NAME.get(name) as ServiceTypeInfo;
}

/** serviceTypeName spells a service type; "unspecified" for UNSPECIFIED and unknown numbers. */
export function serviceTypeName(serviceType: ServiceType): ServiceTypeName | "unspecified" {
  return TYPE_BY_ENUM.get(serviceType)?.name ?? "unspecified";
}

/** serviceTypeNamed reads a service type's name, in any case; undefined when it names none. */
export function serviceTypeNamed(name: string): ServiceTypeInfo | undefined {
  return TYPE_BY_NAME.get(name.toLowerCase());
}

/** MODALITIES maps each modality's name to its enum value. */
export const MODALITIES: Readonly<Record<ModalityName, Modality>> = Object.freeze({
  text: Modality.TEXT,
  image: Modality.IMAGE,
  audio: Modality.AUDIO,
  video: Modality.VIDEO,
});

/** MODALITY_NAMES are the modalities' names. */
export const MODALITY_NAMES: readonly ModalityName[] = Object.freeze(Object.keys(MODALITIES) as ModalityName[]);

const MODALITY_BY_ENUM = new Map<Modality, ModalityName>(MODALITY_NAMES.map((name) => [MODALITIES[name], name]));

/** modalityName spells a modality; "unspecified" for UNSPECIFIED and unknown numbers. */
export function modalityName(modality: Modality): ModalityName | "unspecified" {
  return MODALITY_BY_ENUM.get(modality) ?? "unspecified";
}

/** modalityNamed reads a modality's name, in any case; undefined when it names none. */
export function modalityNamed(name: string): Modality | undefined {
  return (MODALITIES as Readonly<Record<string, Modality>>)[name.toLowerCase()];
}

/** KnownOperation is an operation a call may stand for: every Operation but UNSPECIFIED. */
export type KnownOperation = Exclude<Operation, Operation.UNSPECIFIED>;

/** OperationInfo is everything the mesh knows about one operation. */
export interface OperationInfo {
  readonly operation: KnownOperation;
  /**
   * label is the operation's `operation` metric label on every service, so one query joins the gateway's and the
   * agents' series: OpenTelemetry's gen_ai.operation.name where it has one, the mesh's own word where it has none.
   */
  readonly label: string;
  /** path is the OpenAI route the gateway serves it on, and the one an OpenAI-compatible model server serves. */
  readonly path: string;
  /** serviceType is the only service type whose models may serve it. */
  readonly serviceType: ServiceTypeName;
  /** body says what InferenceCall.body holds: the client's JSON, or a multipart form's text fields as JSON. */
  readonly body: "json" | "form";
  /**
   * feature is the supported feature a model must also declare to serve the operation, when its service type is not
   * enough: an llm server may or may not speak the Responses or Anthropic protocols (see ProtocolFeature).
   */
  readonly feature?: ProtocolFeature;
  /** api is whose API the route belongs to: it decides the error envelope and how the key may be presented. */
  readonly api: "openai" | "anthropic";
}

/** ProtocolFeature names a protocol an llm model's server speaks besides chat and completions. */
export type ProtocolFeature = "responses" | "messages" | "count_tokens";

/** PROTOCOL_FEATURES are the protocol features, in the order /v1/models lists them. */
export const PROTOCOL_FEATURES: readonly ProtocolFeature[] = Object.freeze(["responses", "messages", "count_tokens"]);

/** OPERATIONS are the operations, each once. */
export const OPERATIONS: Readonly<Record<KnownOperation, OperationInfo>> = Object.freeze({
  [Operation.CHAT_COMPLETION]: {
    operation: Operation.CHAT_COMPLETION,
    label: "chat_completion",
    path: "/v1/chat/completions",
    serviceType: "llm",
    body: "json",
    api: "openai",
  },
  [Operation.COMPLETION]: {
    operation: Operation.COMPLETION,
    label: "completion",
    path: "/v1/completions",
    serviceType: "llm",
    body: "json",
    api: "openai",
  },
  [Operation.TRANSCRIPTION]: {
    operation: Operation.TRANSCRIPTION,
    label: "transcription",
    path: "/v1/audio/transcriptions",
    serviceType: "stt",
    body: "form",
    api: "openai",
  },
  [Operation.IMAGE_GENERATION]: {
    operation: Operation.IMAGE_GENERATION,
    label: "image_generation",
    path: "/v1/images/generations",
    serviceType: "image",
    body: "json",
    api: "openai",
  },
  [Operation.IMAGE_EDIT]: {
    operation: Operation.IMAGE_EDIT,
    label: "image_edit",
    path: "/v1/images/edits",
    serviceType: "image",
    body: "form",
    api: "openai",
  },
  [Operation.SPEECH]: {
    operation: Operation.SPEECH,
    label: "speech",
    path: "/v1/audio/speech",
    serviceType: "tts",
    body: "json",
    api: "openai",
  },
  [Operation.EMBEDDING]: {
    operation: Operation.EMBEDDING,
    label: "embeddings",
    path: "/v1/embeddings",
    serviceType: "embedding",
    body: "json",
    api: "openai",
  },
  [Operation.RERANK]: {
    operation: Operation.RERANK,
    label: "rerank",
    path: "/v1/rerank",
    serviceType: "rerank",
    body: "json",
    api: "openai",
  },
  [Operation.RESPONSE]: {
    operation: Operation.RESPONSE,
    label: "response",
    path: "/v1/responses",
    serviceType: "llm",
    body: "json",
    feature: "responses",
    api: "openai",
  },
  [Operation.MESSAGE]: {
    operation: Operation.MESSAGE,
    label: "message",
    path: "/v1/messages",
    serviceType: "llm",
    body: "json",
    feature: "messages",
    api: "anthropic",
  },
  [Operation.COUNT_TOKENS]: {
    operation: Operation.COUNT_TOKENS,
    label: "count_tokens",
    path: "/v1/messages/count_tokens",
    serviceType: "llm",
    body: "json",
    feature: "count_tokens",
    api: "anthropic",
  },
  [Operation.TRANSLATION]: {
    operation: Operation.TRANSLATION,
    label: "translation",
    path: "/v1/audio/translations",
    serviceType: "stt",
    body: "form",
    api: "openai",
  },
} satisfies Record<KnownOperation, OperationInfo>);

/** operationInfo describes an operation; undefined for UNSPECIFIED and numbers from a newer contract. */
export function operationInfo(operation: Operation | undefined): OperationInfo | undefined {
  return operation === undefined ? undefined : (OPERATIONS as Readonly<Partial<Record<Operation, OperationInfo>>>)[operation];
}

/** operationLabel is an operation's metric label, bounded even for numbers from a newer contract. */
export function operationLabel(operation: Operation | undefined): string {
  if (operation === Operation.UNSPECIFIED) return "unspecified";
  return operationInfo(operation)?.label ?? "unknown";
}

/** operationServiceType is the service type that serves an operation, as the proto enum. */
export function operationServiceType(operation: KnownOperation): ServiceType {
  return serviceTypeOf(OPERATIONS[operation].serviceType).serviceType;
}
