/** Gate holds whatever waits on it until it is opened: a scripted answer's remaining parts, a client's next read. */
export interface Gate {
  readonly opened: Promise<void>;
  open(): void;
}

/** gate makes a closed Gate. */
export function gate(): Gate {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}
