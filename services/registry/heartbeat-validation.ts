import { Code, ConnectError } from "@connectrpc/connect";
import { Modality, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { type HeartbeatRequest, ProviderState, Visibility } from "../../gen/infermesh/v1/registry_pb.js";

/** MAX_MODELS_PER_PROVIDER bounds one heartbeat's model list. */
export const MAX_MODELS_PER_PROVIDER = 1024;
const MAX_MODEL_ID_LENGTH = 256;
const MAX_FEATURES = 64;
const MAX_SHORT_TEXT = 256;
const PROVIDER_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6_IN_BRACKETS = /^\[[0-9A-Fa-f:.]{2,45}\]$/;

/** validateProviderId throws INVALID_ARGUMENT unless the id is 1 to 128 characters of [A-Za-z0-9._:-]. */
export function validateProviderId(providerId: string): void {
  if (!PROVIDER_ID.test(providerId)) {
    throw invalid("provider_id", "must be 1 to 128 characters of letters, digits, '.', '_', ':' or '-'");
  }
}

/** validateHeartbeat throws INVALID_ARGUMENT naming the first field that is wrong. */
export function validateHeartbeat(request: HeartbeatRequest): void {
  validateProviderId(request.providerId);
  if (request.endpoint !== "") validateEndpoint(request.endpoint);
  checkLength("gateway_id", request.gatewayId, MAX_SHORT_TEXT);
  checkLength("link_id", request.linkId, MAX_SHORT_TEXT);
  checkLength("name", request.name, MAX_SHORT_TEXT);
  checkLength("version", request.version, MAX_SHORT_TEXT);
  if (request.models.length > MAX_MODELS_PER_PROVIDER) {
    throw invalid("models", `at most ${MAX_MODELS_PER_PROVIDER} models per provider`);
  }
  const seen = new Set<string>();
  request.models.forEach((model, i) => {
    const field = `models[${i}]`;
    if (model.id.trim() === "") throw invalid(`${field}.id`, "must not be empty");
    checkLength(`${field}.id`, model.id, MAX_MODEL_ID_LENGTH);
    const key = `${model.id.toLowerCase()}\u0000${model.serviceType}`;
    if (seen.has(key)) throw invalid(`${field}.id`, `'${model.id}' is listed twice for the same service type`);
    seen.add(key);
    if (!isKnown(ServiceType, model.serviceType) || model.serviceType === ServiceType.UNSPECIFIED) {
      throw invalid(`${field}.service_type`, `unknown service type ${model.serviceType}`);
    }
    for (const modality of [...model.inputModalities, ...model.outputModalities]) {
      if (!isKnown(Modality, modality) || modality === Modality.UNSPECIFIED) {
        throw invalid(`${field}.modalities`, `unknown modality ${modality}`);
      }
    }
    if (model.supportedFeatures.length > MAX_FEATURES) throw invalid(`${field}.supported_features`, "too many");
    for (const feature of model.supportedFeatures) checkLength(`${field}.supported_features`, feature, 64);
    checkLength(`${field}.engine`, model.engine, 64);
    checkLength(`${field}.quantization`, model.quantization, 64);
    checkLength(`${field}.family`, model.family, 64);
  });
  if (!isKnown(ProviderState, request.state)) throw invalid("state", `unknown state ${request.state}`);
  if (request.sharing && !isKnown(Visibility, request.sharing.visibility)) {
    throw invalid("sharing.visibility", `unknown visibility ${request.sharing.visibility}`);
  }
}

/** validateEndpoint accepts "host:port" with a DNS name, an IPv4 address or a bracketed IPv6 address. */
export function validateEndpoint(endpoint: string): void {
  const colon = endpoint.lastIndexOf(":");
  const host = endpoint.slice(0, colon);
  const port = endpoint.slice(colon + 1);
  const validPort = /^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535;
  const validHost = HOST_NAME.test(host) || IPV6_IN_BRACKETS.test(host);
  if (colon <= 0 || !validPort || !validHost) {
    throw invalid("endpoint", `'${endpoint.slice(0, 100)}' is not host:port (port 1-65535)`);
  }
}

function checkLength(field: string, value: string, max: number): void {
  if (value.length > max) throw invalid(field, `longer than ${max} characters`);
}

function isKnown(enumObject: object, value: number): boolean {
  return Object.values(enumObject).includes(value);
}

function invalid(field: string, reason: string): ConnectError {
  return new ConnectError(`invalid ${field}: ${reason}`, Code.InvalidArgument);
}
