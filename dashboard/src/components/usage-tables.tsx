import type { ComponentChildren } from "preact";
import { formatCount, formatDecimal } from "../format.js";
import type { UsageRow } from "../types.js";
import type { KeyUsage, UsageReport } from "./usage-report.js";

/** formatMs writes a duration: "180 ms", "2.4 s"; zero means none was measured. */
export function formatMs(ms: number): string {
  if (ms <= 0) return "—";
  return ms < 1000 ? `${formatCount(ms)} ms` : `${formatDecimal(ms / 1000)} s`;
}

/** UsageByModel is the member's calls per model. */
export function UsageByModel({ rows }: { rows: readonly UsageRow[] }) {
  return (
    <UsageTable caption="By model" columns={["Model", "Requests", "Errors", "Tokens in", "Tokens out", "Avg time to first byte"]}>
      {rows.map((row) => (
        <tr key={row.model}>
          <th scope="row">{row.model ? <code>{row.model}</code> : <span class="hint">(no model)</span>}</th>
          <Count value={row.requests} />
          <Count value={row.errors} />
          <Count value={row.prompt_tokens} />
          <Count value={row.completion_tokens} />
          <td class="number">{formatMs(row.ttfb_ms_avg)}</td>
        </tr>
      ))}
    </UsageTable>
  );
}

/** UsageByKey is the member's calls per API key; calls made signed in count under one row. */
export function UsageByKey({ rows }: { rows: readonly KeyUsage[] }) {
  return (
    <UsageTable caption="By key" columns={["Key", "Requests", "Tokens in", "Tokens out"]}>
      {rows.map((row) => (
        <tr key={row.id}>
          <th scope="row">{row.named ? row.label : <code>{row.label}</code>}</th>
          <Count value={row.requests} />
          <Count value={row.prompt_tokens} />
          <Count value={row.completion_tokens} />
        </tr>
      ))}
    </UsageTable>
  );
}

/** UsageOnProviders is who called which model on the member's providers, the member included. */
export function UsageOnProviders({ rows }: { rows: UsageReport["onProviders"] }) {
  return (
    <UsageTable caption="Who used my providers" columns={["Provider", "User", "Model", "Requests", "Tokens in", "Tokens out"]}>
      {rows.map((row) => (
        <tr key={`${row.provider}\u0000${row.user}\u0000${row.model}`}>
          <td>{row.providerName}</td>
          <td>{row.user}</td>
          <td>
            <code>{row.model}</code>
          </td>
          <Count value={row.requests} />
          <Count value={row.prompt_tokens} />
          <Count value={row.completion_tokens} />
        </tr>
      ))}
    </UsageTable>
  );
}

/** NUMBER_COLUMNS are the headers whose columns hold numbers, aligned right as their cells are. */
const NUMBER_COLUMNS = new Set(["Requests", "Errors", "Tokens in", "Tokens out", "Avg time to first byte"]);

function UsageTable({ caption, columns, children }: { caption: string; columns: readonly string[]; children: ComponentChildren }) {
  return (
    <div class="scroll">
      <table class="usage-table">
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map((column) => (
              <th key={column} scope="col" class={NUMBER_COLUMNS.has(column) ? "number" : undefined}>
                {column}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

function Count({ value }: { value: number }) {
  return <td class="number">{formatCount(value)}</td>;
}
