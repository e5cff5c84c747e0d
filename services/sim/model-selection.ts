import type { ModelKind, ResolvedModel, SimulatorConfig } from "./simulator-options.js";

/**
 * ModelSelection is the model a request gets, or why it gets none: "wrong-kind" (the name is a model of another
 * kind), "no-model-of-kind" (nothing of the endpoint's kind is served), and, with strictModels only, "missing" or
 * "unknown" names.
 */
export type ModelSelection =
  | { readonly ok: true; readonly model: ResolvedModel }
  | { readonly ok: false; readonly problem: "missing" }
  | { readonly ok: false; readonly problem: "unknown"; readonly name: string }
  | { readonly ok: false; readonly problem: "wrong-kind"; readonly name: string; readonly model: ResolvedModel }
  | { readonly ok: false; readonly problem: "no-model-of-kind" };

/**
 * selectModel picks the model of kind a request names. A name always selects its own model, so a model of another
 * kind is refused even when strictModels is off (the mesh must never route across kinds, and tests assert that the
 * simulator refuses it); otherwise a missing or unknown name gets the first model of the kind, as a single-model
 * llama-server ignores the name, unless strictModels is on.
 */
export function selectModel(name: unknown, kind: ModelKind, config: SimulatorConfig): ModelSelection {
  const requested = typeof name === "string" && name !== "" ? name : undefined;
  if (requested !== undefined) {
    const named = config.models.find((model) => model.names.includes(requested));
    if (named !== undefined) {
      return named.kind === kind ? { ok: true, model: named } : { ok: false, problem: "wrong-kind", name: requested, model: named };
    }
  }
  if (config.strictModels)
    return requested === undefined ? { ok: false, problem: "missing" } : { ok: false, problem: "unknown", name: requested };
  const first = config.models.find((model) => model.kind === kind);
  return first === undefined ? { ok: false, problem: "no-model-of-kind" } : { ok: true, model: first };
}
