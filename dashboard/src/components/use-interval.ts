import { useEffect, useRef } from "preact/hooks";

/** useInterval runs task now and every periodMs while the component is shown and the tab is visible. */
export function useInterval(task: () => void | Promise<void>, periodMs: number): void {
  const latest = useRef(task);
  latest.current = task;
  useEffect(() => {
    let running = false;
    const tick = async () => {
      if (running || document.visibilityState === "hidden") return;
      running = true;
      try {
        await latest.current();
      } finally {
        running = false;
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), periodMs);
    const onVisible = () => void tick();
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      clearInterval(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [periodMs]);
}
