import { useEffect, useRef, useState } from "preact/hooks";
import { messageOf } from "./api.js";
import { type ChatMessage, type ChatUsage, streamChat } from "./chat-stream.js";

/** ChatTurn is one message of the conversation shown in the playground. */
export interface ChatTurn {
  readonly role: "user" | "assistant";
  readonly content: string;
  /** reasoning is the thinking a reasoning model streams apart from its answer. */
  readonly reasoning: string;
  /** model is the model that answered (assistant turns). */
  readonly model?: string;
  /** ending says why an answer is incomplete: the member stopped it, or the call failed midway. */
  readonly ending?: "stopped" | "failed";
  /** speed is how many tokens the answer had and how long they took from the first one, when usage was reported. */
  readonly speed?: { readonly tokens: number; readonly seconds: number };
}

/** ChatSession is a conversation with streamed answers. */
export interface ChatSession {
  readonly turns: readonly ChatTurn[];
  readonly streaming: boolean;
  readonly error: string | undefined;
  /**
   * send adds the member's message and streams the answer. It resolves false when the call was refused before any
   * text came: then the message is taken back out of the conversation, so that the member can send it again.
   */
  send(model: string, system: string, text: string): Promise<boolean>;
  /** stop aborts the streaming answer; the text so far stays, marked as stopped. */
  stop(): void;
  /** clear aborts any answer and empties the conversation. */
  clear(): void;
}

/** useChatSession holds one conversation; leaving the page aborts its answer. */
export function useChatSession(): ChatSession {
  const [turns, setTurns] = useState<readonly ChatTurn[]>([]);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<string>();
  const latest = useRef(turns);
  latest.current = turns;
  // The running answer's controller; a finished, stopped or cleared answer no longer owns it, and stops writing.
  const running = useRef<AbortController | undefined>(undefined);

  useEffect(() => () => running.current?.abort(), []);

  async function send(model: string, system: string, text: string): Promise<boolean> {
    if (running.current) return false;
    const mine = new AbortController();
    running.current = mine;
    const history: readonly ChatTurn[] = [...latest.current, { role: "user", content: text, reasoning: "" }];
    const messages: ChatMessage[] = system.trim() === "" ? [] : [{ role: "system", content: system }];
    for (const turn of history) if (turn.content !== "") messages.push({ role: turn.role, content: turn.content });
    setTurns([...history, { role: "assistant", content: "", reasoning: "", model }]);
    setStreaming(true);
    setError(undefined);

    const owns = () => running.current === mine;
    const answer = (change: (turn: ChatTurn) => ChatTurn) => {
      if (owns()) setTurns((all) => all.map((turn, index) => (index === all.length - 1 ? change(turn) : turn)));
    };
    let firstTokenAt: number | undefined;
    let usage: ChatUsage | undefined;
    let kept = true;
    try {
      for await (const event of streamChat(model, messages, mine.signal)) {
        if (event.kind === "usage") {
          usage = event.usage;
          continue;
        }
        firstTokenAt ??= performance.now();
        answer((turn) => ({ ...turn, content: turn.content + event.content, reasoning: turn.reasoning + event.reasoning }));
      }
      if (usage !== undefined && firstTokenAt !== undefined) {
        const speed = { tokens: usage.completion_tokens, seconds: (performance.now() - firstTokenAt) / 1000 };
        answer((turn) => ({ ...turn, speed }));
      }
    } catch (failure) {
      if (!owns()) return true;
      if (mine.signal.aborted) {
        answer((turn) => ({ ...turn, ending: "stopped" }));
      } else if (firstTokenAt === undefined) {
        setTurns((all) => all.slice(0, -2));
        setError(messageOf(failure));
        kept = false;
      } else {
        answer((turn) => ({ ...turn, ending: "failed" }));
        setError(messageOf(failure));
      }
    } finally {
      if (owns()) {
        running.current = undefined;
        setStreaming(false);
      }
    }
    return kept;
  }

  function stop() {
    running.current?.abort();
  }

  function clear() {
    const answer = running.current;
    running.current = undefined;
    answer?.abort();
    setTurns([]);
    setStreaming(false);
    setError(undefined);
  }

  return { turns, streaming, error, send, stop, clear };
}
