import { expect } from "chai";

/** SseEvent is one event of a stream: its `event:` name (undefined for a data-only frame) and its parsed data. */
export interface SseEvent {
  readonly event: string | undefined;
  readonly data: unknown;
}

/**
 * sseEvents splits a simulator's SSE body into its events, checking llama-server's framing on the way (its media
 * streams are framed alike): each event an optional `event:` line and one `data:` line, then a blank line.
 */
export function sseEvents(text: string): SseEvent[] {
  expect(text.slice(-2), "the stream ends with a blank line").to.equal("\n\n");
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((frame) => {
      expect(frame, "an optional event line, then one data line").to.match(/^(event: [^\n]+\n)?data: [^\n]*$/);
      const lines = frame.split("\n");
      const event = lines.length === 2 ? lines[0]?.slice("event: ".length) : undefined;
      return { event, data: JSON.parse((lines.at(-1) ?? "").slice("data: ".length)) as unknown };
    });
}

/** eventNames lists a stream's event names with runs of one name (token deltas) written once. */
export function eventNames(events: readonly SseEvent[]): Array<string | undefined> {
  return events.map((event) => event.event).filter((name, index, names) => index === 0 || name !== names[index - 1]);
}
