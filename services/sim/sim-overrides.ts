import type { FailureMode, ResolvedFailure, SimulatorConfig } from "./simulator-options.js";
import { DEFAULT_FAILURE_STATUS } from "./simulator-options.js";

/**
 * SimOverrides is the simulator's own request extension: the `sim` object of a JSON body, or the `sim[<name>]` fields
 * of a multipart form (what the openai SDK makes of a `sim` object); clients that send it talk to the simulator
 * knowingly, and real servers ignore it as an unknown field:
 * - `tokens_per_second` (number >= 0) and `ttft_ms` (number >= 0) override the pacing of this request (transcription
 *   streams send one word per token; every answer waits ttft_ms before its first byte);
 * - `chunk_interval_ms` (number >= 0) overrides the pause between speech chunks and between image stream events;
 * - `fail` ("none" | "status" | "stall" | "drop") overrides the configured failure ("none" disables it);
 * - `fail_status` (400-599) and `fail_after_tokens` (integer >= 0) refine the failure; for media answers the
 *   "tokens" are the units they stream: transcript words, image stream events, speech chunks.
 */
export interface SimOverrides {
  readonly tokens_per_second?: number;
  readonly ttft_ms?: number;
  readonly chunk_interval_ms?: number;
  readonly fail?: FailureMode | "none";
  readonly fail_status?: number;
  readonly fail_after_tokens?: number;
}

/** ParsedOverrides is a request's validated SimOverrides, or the message of a 400 answer. */
export type ParsedOverrides = { readonly ok: true; readonly overrides: SimOverrides } | { readonly ok: false; readonly message: string };

const FAILURE_MODES: readonly string[] = ["none", "status", "stall", "drop"];
const PACING_FIELDS = ["tokens_per_second", "ttft_ms", "chunk_interval_ms"] as const;
const NUMERIC_FIELDS: ReadonlySet<string> = new Set([...PACING_FIELDS, "fail_status", "fail_after_tokens"]);

/** parseSimOverrides validates the `sim` object of a request; absent (undefined or null) means no overrides. */
export function parseSimOverrides(value: unknown): ParsedOverrides {
  if (value === undefined || value === null) return { ok: true, overrides: {} };
  if (typeof value !== "object" || Array.isArray(value)) return bad("Field 'sim' must be an object");
  const sim = value as Readonly<Record<string, unknown>>;
  const overrides: { -readonly [K in keyof SimOverrides]: SimOverrides[K] } = {};
  for (const name of PACING_FIELDS) {
    const field = sim[name];
    if (field === undefined) continue;
    if (typeof field !== "number" || !Number.isFinite(field) || field < 0) return bad(`Field 'sim.${name}' must be a number >= 0`);
    overrides[name] = field;
  }
  const mode = sim["fail"];
  if (mode !== undefined) {
    if (typeof mode !== "string" || !FAILURE_MODES.includes(mode)) {
      return bad(`Field 'sim.fail' must be one of ${FAILURE_MODES.map((name) => `"${name}"`).join(", ")}`);
    }
    overrides.fail = mode as FailureMode | "none";
  }
  const status = sim["fail_status"];
  if (status !== undefined) {
    if (typeof status !== "number" || !Number.isInteger(status) || status < 400 || status > 599) {
      return bad("Field 'sim.fail_status' must be an HTTP error status (400-599)");
    }
    overrides.fail_status = status;
  }
  const after = sim["fail_after_tokens"];
  if (after !== undefined) {
    if (typeof after !== "number" || !Number.isInteger(after) || after < 0) {
      return bad("Field 'sim.fail_after_tokens' must be an integer >= 0");
    }
    overrides.fail_after_tokens = after;
  }
  return { ok: true, overrides };
}

/**
 * simObjectFromForm rebuilds the `sim` object of a multipart form from its `sim[<name>]` fields (numbers arrive as
 * text); undefined when the form has none.
 */
export function simObjectFromForm(fields: ReadonlyMap<string, readonly string[]>): Record<string, unknown> | undefined {
  let sim: Record<string, unknown> | undefined;
  for (const [name, values] of fields) {
    const match = /^sim\[([a-z_]+)\]$/.exec(name);
    const key = match?.[1];
    const value = values.at(-1);
    if (key === undefined || value === undefined) continue;
    sim ??= {};
    sim[key] = NUMERIC_FIELDS.has(key) && value.trim() !== "" && Number.isFinite(Number(value)) ? Number(value) : value;
  }
  return sim;
}

function bad(message: string): ParsedOverrides {
  return { ok: false, message };
}

/**
 * decideFailure merges the configured failure with the request's overrides; a request-chosen failure always
 * strikes, a configured one strikes with its probability.
 */
export function decideFailure(sim: SimOverrides, config: SimulatorConfig): ResolvedFailure | undefined {
  const configured = config.failure;
  if (sim.fail === "none") return undefined;
  if (sim.fail !== undefined) {
    return {
      mode: sim.fail,
      status: sim.fail_status ?? configured?.status ?? DEFAULT_FAILURE_STATUS,
      afterTokens: sim.fail_after_tokens ?? configured?.afterTokens ?? 0,
      probability: 1,
    };
  }
  if (configured === undefined) return undefined;
  if (configured.probability < 1 && config.random() >= configured.probability) return undefined;
  return {
    ...configured,
    status: sim.fail_status ?? configured.status,
    afterTokens: sim.fail_after_tokens ?? configured.afterTokens,
  };
}
