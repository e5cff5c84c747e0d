import { formatCount } from "../format.js";
import type { Model } from "../types.js";

/**
 * providedBy says who serves a model to the signed-in member, one line per entry: "You (a, b)" when every provider
 * is theirs, otherwise "Shared by <owner> (<provider>)" for each (theirs still read "You (<provider>)"). A gateway
 * without served_by names only the providers, in owned_by.
 */
export function providedBy(model: Model, me: string): readonly string[] {
  const served = model.served_by;
  if (served === undefined || served.length === 0)
    return [
      model.owned_by
        .split(",")
        .filter((name) => name !== "")
        .join(", "),
    ];
  if (served.every((entry) => entry.owner === me)) return [`You (${served.map((entry) => entry.provider).join(", ")})`];
  return served.map((entry) => (entry.owner === me ? `You (${entry.provider})` : `Shared by ${entry.owner} (${entry.provider})`));
}

function listed(values: readonly string[]): string {
  return values.length === 0 ? "—" : values.join(", ");
}

/** ModelTable lists models with their capabilities and who serves them; it scrolls sideways on a narrow screen. */
export function ModelTable({ models, me }: { models: readonly Model[]; me: string }) {
  return (
    <div class="scroll">
      <table class="model-table">
        <caption>Models you can use</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Type</th>
            <th scope="col">Input</th>
            <th scope="col">Output</th>
            <th scope="col">Features</th>
            <th scope="col" class="number">
              Context
            </th>
            <th scope="col">Provided by</th>
          </tr>
        </thead>
        <tbody>
          {models.map((model) => (
            <tr key={`${model.id}\u0000${model.service_type}`}>
              <th scope="row">
                <code>{model.id}</code>
              </th>
              <td>{model.service_type}</td>
              <td>{listed(model.input_modalities)}</td>
              <td>{listed(model.output_modalities)}</td>
              <td>{listed(model.supported_features)}</td>
              <td class="number">{model.context_length === null ? "—" : formatCount(model.context_length)}</td>
              <td>
                {providedBy(model, me).map((line) => (
                  <span key={line} class="model-provider">
                    {line}
                  </span>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
