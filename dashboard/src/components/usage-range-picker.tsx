import { useState } from "preact/hooks";
import { datesRange, PRESETS, presetRange, rangeDates, type UsageRange } from "./usage-range.js";

/**
 * UsageRangePicker chooses the range: a preset, or two local dates (the "To" day counted whole). A date change
 * applies at once when both dates are valid and in order; until then it says what is wrong.
 */
export function UsageRangePicker({ range, onChange }: { range: UsageRange; onChange: (range: UsageRange) => void }) {
  // A draft holds dates that do not make a range yet, so that the inputs keep what the reader entered.
  const [draft, setDraft] = useState<{ readonly from: string; readonly to: string }>();
  const shown = draft ?? rangeDates(range);
  const [problem, setProblem] = useState<string>();

  function changeDate(which: "from" | "to", value: string) {
    const dates = { ...shown, [which]: value };
    const chosen = datesRange(dates.from, dates.to);
    const refused =
      chosen === undefined ? "Enter both dates." : chosen.fromMs >= chosen.toMs ? "“From” must not be later than “To”." : undefined;
    setProblem(refused);
    setDraft(refused === undefined ? undefined : dates);
    if (chosen !== undefined && refused === undefined) onChange(chosen);
  }

  // The problem follows the fieldset rather than sitting in it, so that a toolbar around the picker can wrap it onto a line of its own.
  return (
    <>
      <fieldset class="usage-range">
        <legend class="visually-hidden">Time range</legend>
        <div class="usage-dates">
          <div>
            <label class="usage-date-label" for="usage-from">
              From
            </label>
            <input
              id="usage-from"
              class="usage-date-input"
              type="date"
              value={shown.from}
              max={shown.to}
              aria-describedby="usage-range-problem"
              onChange={(event) => changeDate("from", event.currentTarget.value)}
            />
          </div>
          <div>
            <label class="usage-date-label" for="usage-to">
              To
            </label>
            <input
              id="usage-to"
              class="usage-date-input"
              type="date"
              value={shown.to}
              min={shown.from}
              aria-describedby="usage-range-problem"
              onChange={(event) => changeDate("to", event.currentTarget.value)}
            />
          </div>
        </div>
        <div class="usage-presets">
          {PRESETS.map(([preset, label]) => (
            <button
              key={preset}
              type="button"
              aria-pressed={range.preset === preset}
              onClick={() => {
                setProblem(undefined);
                setDraft(undefined);
                onChange(presetRange(preset));
              }}
            >
              {label}
            </button>
          ))}
        </div>
      </fieldset>
      <p id="usage-range-problem" role="alert" class="error usage-range-problem" hidden={!problem}>
        {problem}
      </p>
    </>
  );
}
