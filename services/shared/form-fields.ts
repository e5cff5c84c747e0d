import { Code, ConnectError } from "@connectrpc/connect";

/**
 * A multipart call's text fields travel the mesh as InferenceCall.body: a JSON object of the form's fields, values as
 * strings and repeated fields as arrays of strings. The gateway's gRPC face checks a caller's body by these rules
 * before it routes the call, and the agent reads the body by them.
 */

/** FormFields are a form's text fields in the client's order, a repeated field once per value, names verbatim. */
export type FormFields = readonly (readonly [name: string, value: string])[];

/** FormBodyError says a multipart call's body or media break the mesh's contract: the call fails INVALID_ARGUMENT. */
export class FormBodyError extends ConnectError {
  constructor(message: string) {
    super(message, Code.InvalidArgument);
  }
}

const NOT_AN_OBJECT = "the body of a multipart call must be a JSON object of its form fields";

/** formFieldsOf reads a parsed body as form fields, or throws a FormBodyError naming the field at fault. */
export function formFieldsOf(json: unknown): FormFields {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormBodyError(NOT_AN_OBJECT);
  const fields: (readonly [string, string])[] = [];
  for (const [name, value] of Object.entries(json)) {
    const values: unknown[] = Array.isArray(value) ? value : [value];
    for (const item of values) {
      if (typeof item !== "string") throw new FormBodyError(`form field '${name}' must be a string or a list of strings`);
      fields.push([name, item]);
    }
  }
  return fields;
}

/** parseFormFields reads the body bytes of a multipart call as form fields, or throws a FormBodyError. */
export function parseFormFields(body: Uint8Array): FormFields {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    throw new FormBodyError(NOT_AN_OBJECT);
  }
  return formFieldsOf(json);
}
