import { useLayoutEffect, useRef } from "preact/hooks";
import type { ChatTurn } from "../chat-session.js";
import { formatCount, formatDecimal } from "../format.js";

/** PINNED_SLACK_PX is how near the bottom a reader counts as following the answer, so new text scrolls into view. */
const PINNED_SLACK_PX = 48;

/**
 * Conversation is the chat's log. It follows a streaming answer while the reader is at the bottom, and leaves them
 * where they are once they scroll up. It is busy while an answer streams, so that screen readers announce the
 * answer whole rather than token by token.
 */
export function Conversation({ turns, streaming }: { turns: readonly ChatTurn[]; streaming: boolean }) {
  const log = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);

  useLayoutEffect(() => {
    const element = log.current;
    if (element && pinned.current) element.scrollTop = element.scrollHeight;
  }, [turns]);

  function onScroll() {
    const element = log.current;
    if (element) pinned.current = element.scrollHeight - element.scrollTop - element.clientHeight < PINNED_SLACK_PX;
  }

  return (
    <div
      ref={log}
      role="log"
      aria-label="Conversation"
      aria-live="polite"
      aria-busy={streaming}
      class="playground-conversation"
      // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take focus for keyboard users to scroll it.
      tabIndex={0}
      onScroll={onScroll}
    >
      {turns.length === 0 ? (
        <p class="hint">Your conversation shows here. The whole conversation goes with each message.</p>
      ) : (
        turns.map((turn, index) => <Turn key={index} turn={turn} streaming={streaming && index === turns.length - 1} />)
      )}
    </div>
  );
}

function Turn({ turn, streaming }: { turn: ChatTurn; streaming: boolean }) {
  const { speed } = turn;
  return (
    <div class={`playground-turn ${turn.role}`}>
      <p class="who">{turn.role === "user" ? "You" : (turn.model ?? "Assistant")}</p>
      {turn.reasoning === "" ? null : (
        <p class="reasoning">
          <span class="visually-hidden">Reasoning: </span>
          {turn.reasoning}
        </p>
      )}
      <p class={streaming ? "text pending" : "text"}>
        {/* Models often open with a space or a blank line, which would only indent the first line here. */}
        {turn.content.trimStart()}
        {turn.ending === undefined ? null : <span class="ending">{turn.ending === "stopped" ? " (stopped)" : " (failed)"}</span>}
      </p>
      {speed === undefined ? null : (
        <p class="hint speed">
          {formatCount(speed.tokens)} tokens
          {speed.seconds > 0 ? ` · ${formatDecimal(speed.tokens / speed.seconds)} tokens/s` : ""}
        </p>
      )}
    </div>
  );
}
