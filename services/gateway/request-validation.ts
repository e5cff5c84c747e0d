import { isUtf8 } from "node:buffer";
import { Ajv, type AnySchema, type ErrorObject, type ValidateFunction } from "ajv";
import type { FastifySchemaCompiler } from "fastify";
import { echoed, type GatewayError, invalidRequest } from "./gateway-errors.js";

/** JsonObject is a parsed JSON request body. */
export type JsonObject = Record<string, unknown>;

/**
 * JsonBody is a request body that passed its route's schema: the client's bytes, forwarded as they are, and what they
 * parse to, which the gateway reads for routing.
 */
export interface JsonBody {
  readonly bytes: Uint8Array;
  readonly json: JsonObject;
}

/**
 * MAX_JSON_DEPTH bounds how deeply a request body may nest arrays and objects, as serde_json's recursion limit does:
 * the provider gets the client's bytes, and a JSON library that recurses once per level must never see 10,000 of them.
 */
export const MAX_JSON_DEPTH = 128;

const MULTIPART = "multipart/form-data";
/** JSON_WHITESPACE are the four bytes JSON counts as white space (RFC 8259): space, tab, line feed, carriage return. */
const JSON_WHITESPACE: ReadonlySet<number> = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NO_BYTES = new Uint8Array(0);

/** SchemaNode is a JSON Schema object as the error formatter reads it. */
interface SchemaNode {
  readonly type?: string | readonly string[];
  readonly required?: readonly string[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
  readonly description?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly "x-type-error-code"?: string;
  readonly "x-missing-code"?: string;
}

/**
 * ajv validates requests exactly as they came: no type coercion, no defaults, nothing removed, so a request that
 * passes is the request the provider gets. The annotations choose error codes (see openai-schemas.ts).
 */
const ajv = new Ajv({
  allErrors: false,
  verbose: true,
  strict: true,
  allowUnionTypes: true,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  keywords: [
    { keyword: "x-type-error-code", schemaType: "string" },
    { keyword: "x-missing-code", schemaType: "string" },
  ],
});

/**
 * requestValidatorCompiler is the gateway's Fastify validator compiler: a JSON body is parsed from the bytes the
 * gateway keeps (strict UTF-8, no byte order mark, at most MAX_JSON_DEPTH deep), checked against its route's schema,
 * and handed to the route as a JsonBody; any failure is OpenAI's 400 naming the field. Multipart bodies are read by
 * their routes, which check the form's text fields with a compileChecker of the same schemas.
 */
export const requestValidatorCompiler: FastifySchemaCompiler<AnySchema> = ({ schema, httpPart, contentType }) => {
  if (httpPart !== "body") return ajv.compile(schema);
  if (contentType === MULTIPART) return () => true;
  const check = compileChecker(schema);
  const emptyIsObject = ((schema as SchemaNode).required ?? []).length === 0;
  return (data: unknown) => {
    try {
      const body = parseJsonBody(data, emptyIsObject);
      check(body.json);
      return { value: body };
    } catch (error) {
      return { error: error as GatewayError };
    }
  };
};

/** compileChecker compiles a schema into a function that throws OpenAI's 400 for the first rule a value breaks. */
export function compileChecker(schema: AnySchema): (value: unknown) => void {
  const validate: ValidateFunction = ajv.compile(schema);
  return (value) => {
    if (!validate(value)) throw validationError(validate.errors?.[0], schema as SchemaNode);
  };
}

/**
 * parseJsonBody parses a request body that must be JSON in UTF-8 (RFC 8259: no byte order mark, no other encoding),
 * nested at most MAX_JSON_DEPTH deep, or throws a 400 invalid_json saying what is wrong. The bytes are checked, not
 * decoded leniently, because they are what the provider receives. An empty body is an empty object where that is a
 * valid request, and an error where it is not.
 */
export function parseJsonBody(data: unknown, emptyIsObject: boolean): JsonBody {
  const bytes = data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : undefined;
  if (bytes === undefined || isBlank(bytes)) {
    if (emptyIsObject) return { bytes: NO_BYTES, json: {} };
    throw invalidJson("The request body is empty; send a JSON object.");
  }
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    throw invalidJson("The request body starts with a byte order mark; send JSON without one.");
  }
  if (!isUtf8(bytes)) throw invalidJson("The request body is not valid UTF-8.");
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw invalidJson(`The request body is not valid JSON: ${(error as Error).message}`);
  }
  if (nestsDeeper(parsed, MAX_JSON_DEPTH)) {
    throw invalidRequest(`The request body nests arrays and objects more than ${MAX_JSON_DEPTH} deep.`, { code: "json_too_deep" });
  }
  // The schema's root type refuses anything but an object, with the code and words of the route.
  return { bytes, json: parsed as JsonObject };
}

/** isBlank tells whether bytes are nothing but JSON white space; it stops at the first other byte, the body's first. */
function isBlank(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (!JSON_WHITESPACE.has(byte)) return false;
  return true;
}

/** nestsDeeper tells whether a parsed value nests arrays and objects more than depth deep; it recurses no deeper. */
function nestsDeeper(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (depth === 0) return true;
  if (Array.isArray(value)) return value.some((item) => nestsDeeper(item, depth - 1));
  for (const key in value) if (nestsDeeper((value as JsonObject)[key], depth - 1)) return true;
  return false;
}

function invalidJson(message: string): GatewayError {
  return invalidRequest(message, { code: "invalid_json" });
}

/**
 * validationError turns the first rule a request broke into OpenAI's 400: `param` is the field's path as OpenAI
 * writes it (`messages[0].role`), `code` OpenAI's word for what is wrong, or the field's annotation. A required field
 * sent as null counts as missing.
 */
function validationError(error: ErrorObject | undefined, root: SchemaNode): GatewayError {
  if (!error) return invalidRequest("The request is not valid.", { code: "invalid_value" });
  const path = pointerSegments(error.instancePath);
  if (error.keyword === "required") {
    const name = String((error.params as { missingProperty: string }).missingProperty);
    return missing([...path, name], (error.parentSchema as SchemaNode | undefined)?.properties?.[name]);
  }
  const schema = (error.parentSchema ?? {}) as SchemaNode;
  if (error.keyword === "type" && error.data === null && isRequiredProperty(root, error.schemaPath)) return missing(path, schema);
  const param = paramOf(path);
  const named = param === "" ? "The request body" : `'${param}'`;
  const detail = { param: param === "" ? "body" : param };
  const limit = (error.params as { limit?: number }).limit;
  switch (error.keyword) {
    case "type": {
      // JSON.parse reads 1e309 as Infinity: a number, out of any range.
      if (typeof error.data === "number" && !Number.isFinite(error.data) && isNumeric(schema))
        return invalidRequest(`${named} must be ${rangeText(schema)}.`, { ...detail, code: "invalid_value" });
      const code = schema["x-type-error-code"] ?? "invalid_type";
      // A body that is not an object is a body that is not the JSON asked for: no parameter is at fault.
      return invalidRequest(
        `${named} must be ${typeText(schema.type, param === "")}.`,
        code === "invalid_json" ? { code } : { ...detail, code },
      );
    }
    case "minItems":
      return invalidRequest(limit === 1 ? `${named} must not be empty.` : `${named} must have at least ${limit} items.`, {
        ...detail,
        code: limit === 1 ? "empty_array" : "invalid_value",
      });
    case "minLength":
      return invalidRequest(limit === 1 ? `${named} must not be empty.` : `${named} must be at least ${limit} characters.`, {
        ...detail,
        code: limit === 1 ? "missing_required_parameter" : "invalid_value",
      });
    case "maxLength":
      return invalidRequest(`${named} must be at most ${limit} characters.`, { ...detail, code: "string_above_max_length" });
    case "minimum":
    case "maximum":
      return invalidRequest(`${named} must be ${rangeText(schema)}.`, { ...detail, code: "invalid_value" });
    case "enum": {
      const allowed = ((error.params as { allowedValues?: unknown[] }).allowedValues ?? []).filter((value) => value !== null);
      return invalidRequest(`${named} must be one of ${allowed.join(", ")}.`, { ...detail, code: "invalid_value" });
    }
    case "pattern":
      return invalidRequest(`${named} must be ${schema.description ?? "in the documented format"}.`, { ...detail, code: "invalid_value" });
    case "additionalProperties": {
      const extra = paramOf([...path, String((error.params as { additionalProperty: string }).additionalProperty)]);
      return invalidRequest(`Unrecognized request argument supplied: ${echoed(extra)}`, { param: extra, code: "unknown_parameter" });
    }
    default:
      return invalidRequest(`${named} ${error.message ?? "is not valid"}.`, { ...detail, code: "invalid_value" });
  }
}

/** missing is the 400 for a required field that is absent: OpenAI's words for a model, the field's code otherwise. */
function missing(path: readonly string[], schema: SchemaNode | undefined): GatewayError {
  const param = paramOf(path);
  const code = schema?.["x-missing-code"] ?? "missing_required_parameter";
  const message =
    param === "model"
      ? "you must provide a model parameter"
      : `'${param}' is required${schema?.type ? `: it must be ${typeText(schema.type, false)}` : ""}.`;
  return invalidRequest(message, { param, code });
}

/** isRequiredProperty tells whether the schema at schemaPath (ending in a keyword) is a required property's. */
function isRequiredProperty(root: SchemaNode, schemaPath: string): boolean {
  const segments = schemaPath.replace(/^#\/?/, "").split("/").map(unescapePointer).slice(0, -1);
  const name = segments.at(-1);
  if (segments.at(-2) !== "properties" || name === undefined) return false;
  let owner: unknown = root;
  for (const segment of segments.slice(0, -2)) owner = (owner as Record<string, unknown> | undefined)?.[segment];
  return ((owner as SchemaNode | undefined)?.required ?? []).includes(name);
}

function pointerSegments(pointer: string): string[] {
  return pointer === "" ? [] : pointer.slice(1).split("/").map(unescapePointer);
}

function unescapePointer(segment: string): string {
  return segment.replaceAll("~1", "/").replaceAll("~0", "~");
}

/** paramOf writes a path as OpenAI names parameters: `messages[0].content`. */
function paramOf(path: readonly string[]): string {
  let param = "";
  for (const segment of path) {
    if (/^\d+$/.test(segment)) param += `[${segment}]`;
    else param += param === "" ? segment : `.${segment}`;
  }
  return param;
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: "a string",
  integer: "a whole number",
  number: "a number",
  boolean: "true or false",
  array: "an array",
  object: "an object",
};

function typeText(type: SchemaNode["type"], root: boolean): string {
  if (root) return "a JSON object";
  const types = (type === undefined ? [] : typesOf({ type })).filter((name) => name !== "null");
  const words = types.map((name) => TYPE_WORDS[name] ?? name);
  return words.length <= 1 ? (words[0] ?? "valid") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

function typesOf(schema: SchemaNode): readonly string[] {
  return typeof schema.type === "string" ? [schema.type] : (schema.type ?? []);
}

function isNumeric(schema: SchemaNode): boolean {
  return typesOf(schema).some((type) => type === "number" || type === "integer");
}

function rangeText(schema: SchemaNode): string {
  const types = typesOf(schema);
  const kind = types.includes("integer") ? "a whole number" : "a number";
  const { minimum, maximum } = schema;
  if (minimum !== undefined && maximum !== undefined && maximum < Number.MAX_SAFE_INTEGER) return `${kind} from ${minimum} to ${maximum}`;
  if (minimum !== undefined) return `${kind} of at least ${minimum}`;
  if (maximum !== undefined) return `${kind} of at most ${maximum}`;
  return `a finite ${kind.slice(2)}`;
}
