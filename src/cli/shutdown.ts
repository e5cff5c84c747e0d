import type { Logger } from "../../services/shared/logger.js";

/** onShutdownSignal resolves at the first SIGTERM or SIGINT; a second one exits at once. */
export function onShutdownSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      log.info({ signal }, "shutting down");
      process.removeListener("SIGTERM", handler);
      process.removeListener("SIGINT", handler);
      process.once("SIGTERM", () => process.exit(1));
      process.once("SIGINT", () => process.exit(130));
      resolve(signal);
    };
    process.on("SIGTERM", handler);
    process.on("SIGINT", handler);
  });
}
