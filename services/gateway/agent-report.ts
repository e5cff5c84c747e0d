import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Modality, ModelSchema, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { type LoadSchema, ProviderState, type SharingSchema, Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import { MODALITY_NAMES, modalityNamed, SERVICE_TYPE_NAMES, serviceTypeNamed } from "../shared/inference-catalog.js";
import { type GatewayError, invalidRequest as invalid } from "./gateway-errors.js";

/** DEFAULT_AGENT_NAME is inference.club's agent name when a report names none. */
export const DEFAULT_AGENT_NAME = "club-host";

const VISIBILITIES: Readonly<Record<string, Visibility>> = {
  private: Visibility.PRIVATE,
  users: Visibility.USERS,
  public: Visibility.PUBLIC,
};

type ModelInit = MessageInitShape<typeof ModelSchema>;

/**
 * AgentReport is what an agent tells the gateway over HTTP, in inference.club's words: its name, and for a full report its
 * models. Registry-side validation (lengths, id and endpoint syntax, duplicates) stays the registry's; this only
 * reads the JSON into the HeartbeatRequest's shape.
 */
export interface AgentReport {
  readonly name: string;
  /** id is the provider id the agent asked for; by default it is derived from the user and the name. */
  readonly id: string | undefined;
  readonly version: string | undefined;
  readonly state: ProviderState | undefined;
  readonly load: MessageInitShape<typeof LoadSchema> | undefined;
  readonly sharing: MessageInitShape<typeof SharingSchema> | undefined;
  /** models are undefined in a bare heartbeat, which only says the agent is alive. */
  readonly models: ModelInit[] | undefined;
}

/**
 * parseAgentReport reads a heartbeat or register body: `{name, id, version,
 * accepting_requests, load, sharing, models[], services[]}`, where each model has `id`, `type` (llm, stt, image,
 * tts), `input_modalities`, `output_modalities`, `features`, `context_length`, `quantization`, `engine`, `family`,
 * `parameter_count`, and each of inference.club's manifest `services[]` gives its `type`, `engine` and `features` to its
 * `models[]`. Unknown keys are ignored, as agents send more than the mesh uses; a known key of the wrong shape is a
 * 400 that names it.
 */
export function parseAgentReport(body: unknown): AgentReport {
  const root = object(body, "body", "The request body must be a JSON object.");
  const name = optionalString(root, "name", "name") ?? DEFAULT_AGENT_NAME;
  if (name.trim() === "") throw invalidRequest("'name' must not be empty.", "name");
  // Gateways dial no address a user names: an agent that serves calls dials the mesh (`infermesh agent --mesh`).
  if (root.endpoint !== undefined) {
    throw invalidRequest(
      "'endpoint' is not accepted: the mesh dials no agent. Run `infermesh agent --mesh URL` to serve calls; an agent that only reports over HTTP is listed, not routed to.",
      "endpoint",
    );
  }
  const accepting = optionalBoolean(root, "accepting_requests", "accepting_requests");
  const hasModels = root.models !== undefined || root.services !== undefined;
  return {
    name,
    id: optionalString(root, "id", "id"),
    version: optionalString(root, "version", "version"),
    state: accepting === undefined ? undefined : accepting ? ProviderState.ACCEPTING : ProviderState.DRAINING,
    load: root.load === undefined ? undefined : parseLoad(root.load),
    sharing: root.sharing === undefined ? undefined : parseSharing(root.sharing),
    models: hasModels ? [...parseModels(root.models, "models", {}), ...parseServices(root.services)] : undefined,
  };
}

interface ServiceDefaults {
  readonly type?: ServiceType;
  readonly engine?: string;
  readonly features?: readonly string[];
}

function parseServices(value: unknown): ModelInit[] {
  if (value === undefined) return [];
  return array(value, "services").flatMap((entry, i) => {
    const param = `services[${i}]`;
    const service = object(entry, param);
    const engine = optionalString(service, "engine", `${param}.engine`);
    const features = optionalStrings(service, "features", `${param}.features`);
    return parseModels(service.models ?? [], `${param}.models`, {
      type: serviceType(service.type, `${param}.type`),
      ...(engine === undefined ? {} : { engine }),
      ...(features === undefined ? {} : { features }),
    });
  });
}

function parseModels(value: unknown, param: string, defaults: ServiceDefaults): ModelInit[] {
  if (value === undefined) return [];
  return array(value, param).map((entry, i) => {
    const at = `${param}[${i}]`;
    const model = object(entry, at);
    const id = optionalString(model, "id", `${at}.id`);
    if (id === undefined) throw invalidRequest(`'${at}.id' is required.`, `${at}.id`);
    const type = model.type === undefined && defaults.type !== undefined ? defaults.type : serviceType(model.type, `${at}.type`);
    const features = [...(defaults.features ?? []), ...(optionalStrings(model, "features", `${at}.features`) ?? [])];
    return {
      id,
      serviceType: type,
      inputModalities: modalities(model, "input_modalities", `${at}.input_modalities`),
      outputModalities: modalities(model, "output_modalities", `${at}.output_modalities`),
      supportedFeatures: [...new Set(features)],
      contextLength: wholeNumber(model.context_length, `${at}.context_length`, 0xffff_ffff),
      quantization: optionalString(model, "quantization", `${at}.quantization`) ?? "",
      engine: optionalString(model, "engine", `${at}.engine`) ?? defaults.engine ?? "",
      family: optionalString(model, "family", `${at}.family`) ?? "",
      parameterCount: BigInt(wholeNumber(model.parameter_count, `${at}.parameter_count`, Number.MAX_SAFE_INTEGER)),
    };
  });
}

function parseLoad(value: unknown): MessageInitShape<typeof LoadSchema> {
  const load = object(value, "load");
  return {
    inFlight: wholeNumber(load.in_flight, "load.in_flight", 0xffff_ffff),
    maxConcurrency: wholeNumber(load.max_concurrency, "load.max_concurrency", 0xffff_ffff),
    queued: wholeNumber(load.queued, "load.queued", 0xffff_ffff),
  };
}

function parseSharing(value: unknown): MessageInitShape<typeof SharingSchema> {
  const sharing = object(value, "sharing");
  const name = optionalString(sharing, "visibility", "sharing.visibility") ?? "private";
  const visibility = VISIBILITIES[name];
  if (visibility === undefined) {
    throw invalidRequest(`'sharing.visibility' must be one of ${Object.keys(VISIBILITIES).join(", ")}.`, "sharing.visibility");
  }
  return { visibility, allowedUsers: optionalStrings(sharing, "allowed_users", "sharing.allowed_users") ?? [] };
}

function serviceType(value: unknown, param: string): ServiceType {
  const type = typeof value === "string" ? serviceTypeNamed(value)?.serviceType : undefined;
  if (type === undefined) throw invalidRequest(`'${param}' must be one of ${SERVICE_TYPE_NAMES.join(", ")}.`, param);
  return type;
}

function modalities(parent: Record<string, unknown>, key: string, param: string): Modality[] {
  return (optionalStrings(parent, key, param) ?? []).map((name, i) => {
    const modality = modalityNamed(name);
    if (modality === undefined) throw invalidRequest(`'${param}[${i}]' must be one of ${MODALITY_NAMES.join(", ")}.`, param);
    return modality;
  });
}

function object(value: unknown, param: string, message = `'${param}' must be a JSON object.`): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidRequest(message, param);
  return value as Record<string, unknown>;
}

function array(value: unknown, param: string): unknown[] {
  if (!Array.isArray(value)) throw invalidRequest(`'${param}' must be an array.`, param);
  return value;
}

function optionalString(parent: Record<string, unknown>, key: string, param: string): string | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalidRequest(`'${param}' must be a string.`, param);
  return value;
}

function optionalBoolean(parent: Record<string, unknown>, key: string, param: string): boolean | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw invalidRequest(`'${param}' must be true or false.`, param);
  return value;
}

function optionalStrings(parent: Record<string, unknown>, key: string, param: string): string[] | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw invalidRequest(`'${param}' must be an array of strings.`, param);
  }
  return value as string[];
}

function wholeNumber(value: unknown, param: string, max: number): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalidRequest(`'${param}' must be a whole number from 0 to ${max}.`, param);
  }
  return value;
}

/** invalidRequest is a 400 naming the report's field at fault. */
function invalidRequest(message: string, param: string): GatewayError {
  return invalid(message, { param });
}
