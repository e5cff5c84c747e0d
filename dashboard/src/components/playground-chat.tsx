import { useRef, useState } from "preact/hooks";
import { useChatSession } from "../chat-session.js";
import { ErrorNotice } from "./notice.js";
import { Conversation } from "./playground-conversation.js";

/**
 * ChatPanel chats with a model: the whole conversation goes with each message, and the answer streams in as the
 * model writes it. Stop aborts the call, which the gateway passes on to the model server.
 */
export function ChatPanel({ model }: { model: string }) {
  const session = useChatSession();
  const [draft, setDraft] = useState("");
  const [system, setSystem] = useState("");
  const message = useRef<HTMLTextAreaElement>(null);

  async function send() {
    const text = draft.trim();
    if (text === "" || session.streaming) return;
    setDraft("");
    // Send turns off while the answer streams: the message box keeps the focus, and with it Enter and Escape.
    message.current?.focus();
    const kept = await session.send(model, system, text);
    if (!kept) setDraft((typed) => (typed === "" ? text : typed));
  }

  function stop() {
    session.stop();
    message.current?.focus();
  }

  function onKeyDown(event: KeyboardEvent) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void send();
    } else if (event.key === "Escape" && session.streaming) {
      event.preventDefault();
      stop();
    }
  }

  return (
    <div class="playground-chat">
      <details class="playground-system">
        <summary>System prompt</summary>
        <textarea
          id="chat-system"
          aria-label="System prompt"
          aria-describedby="chat-system-hint"
          rows={3}
          value={system}
          onInput={(event) => setSystem(event.currentTarget.value)}
          placeholder="You are a helpful assistant."
        />
        <p class="hint" id="chat-system-hint">
          Sent first, ahead of the conversation, with every message.
        </p>
      </details>
      <Conversation turns={session.turns} streaming={session.streaming} />
      <ErrorNotice error={session.error} />
      <form
        class="playground-compose"
        onSubmit={(event) => {
          event.preventDefault();
          void send();
        }}
      >
        <label for="chat-message">Message</label>
        <textarea
          ref={message}
          id="chat-message"
          rows={3}
          value={draft}
          onInput={(event) => setDraft(event.currentTarget.value)}
          onKeyDown={onKeyDown}
          aria-describedby="chat-message-hint"
        />
        <div class="actions">
          <button type="submit" class="primary" disabled={session.streaming}>
            Send
          </button>
          <button type="button" onClick={stop} disabled={!session.streaming}>
            Stop
          </button>
          <button type="button" onClick={session.clear} disabled={session.turns.length === 0}>
            New chat
          </button>
          <p class="hint" id="chat-message-hint">
            Enter sends, Shift+Enter starts a new line, Esc stops the answer.
          </p>
        </div>
      </form>
    </div>
  );
}
