import { useEffect, useState } from "preact/hooks";
import { api } from "./api.js";

/** GatewayOptions is what GET /api/auth/options says: who may sign up, and whether this port serves metrics. */
export interface GatewayOptions {
  readonly signup: "open" | "invite" | "closed";
  readonly metrics_path: string | null;
}

let asked: Promise<GatewayOptions> | undefined;

/** useGatewayOptions asks the gateway once per page load; undefined until it has answered (or if it failed). */
export function useGatewayOptions(): GatewayOptions | undefined {
  const [options, setOptions] = useState<GatewayOptions>();
  useEffect(() => {
    asked ??= api<GatewayOptions>("GET", "/api/auth/options");
    asked.then(setOptions, () => {});
  }, []);
  return options;
}
