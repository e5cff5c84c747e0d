import { useEffect, useRef, useState } from "preact/hooks";
import { messageOf } from "./api.js";

/** RequestState is one form's call: whether it runs, its last result, and what went wrong with the last try. */
export interface RequestState<T> {
  readonly busy: boolean;
  readonly result: T | undefined;
  readonly error: string | undefined;
  /** run starts the task, aborting the one before it; the last result stays shown until a new one arrives. */
  run(task: (signal: AbortSignal) => Promise<T>): Promise<void>;
}

interface Shown<T> {
  readonly busy: boolean;
  readonly result: T | undefined;
  readonly error: string | undefined;
}

/** useRequest keeps the state of a form's call; leaving the page aborts a call still running. */
export function useRequest<T>(): RequestState<T> {
  const [shown, setShown] = useState<Shown<T>>({ busy: false, result: undefined, error: undefined });
  const running = useRef<AbortController | undefined>(undefined);
  useEffect(() => () => running.current?.abort(), []);

  async function run(task: (signal: AbortSignal) => Promise<T>): Promise<void> {
    running.current?.abort();
    const mine = new AbortController();
    running.current = mine;
    setShown((before) => ({ busy: true, result: before.result, error: undefined }));
    try {
      const result = await task(mine.signal);
      if (running.current === mine) setShown({ busy: false, result, error: undefined });
    } catch (failure) {
      if (running.current === mine) setShown((before) => ({ busy: false, result: before.result, error: messageOf(failure) }));
    } finally {
      if (running.current === mine) running.current = undefined;
    }
  }

  return { ...shown, run };
}
