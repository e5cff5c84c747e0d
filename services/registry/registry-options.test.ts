import { expect } from "chai";
import { systemClock } from "../shared/clock.js";
import { ConfigError } from "../shared/config-error.js";
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_SESSION_TTL_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_TTL_INTERVALS,
  type RegistryOptions,
  resolveRegistryOptions,
} from "./registry.js";
import { DEFAULT_PRESENCE_PREFIX } from "./shared-presence.js";
import type { RegistryStore } from "./store/registry-store.js";

const REQUIRED: RegistryOptions = {
  store: {} as RegistryStore,
  meshToken: "mesh-token-0123456789",
  listen: { host: "127.0.0.1", port: 0 },
};

describe("registry options", () => {
  it("apply every default once: the TTL follows the heartbeat interval", () => {
    const { log, ...settings } = resolveRegistryOptions(REQUIRED);
    expect(log.level).to.equal("silent");
    expect(settings).to.deep.equal({
      ...REQUIRED,
      metricsListen: undefined,
      clock: systemClock,
      heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
      ttlMs: DEFAULT_HEARTBEAT_INTERVAL_MS * DEFAULT_TTL_INTERVALS,
      maxMessageBytes: undefined,
      shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS,
      sessionTtlMs: DEFAULT_SESSION_TTL_MS,
      tls: undefined,
      redis: undefined,
      redisPrefix: DEFAULT_PRESENCE_PREFIX,
    });
    expect(resolveRegistryOptions({ ...REQUIRED, heartbeatIntervalMs: 200 }).ttlMs).to.equal(200 * DEFAULT_TTL_INTERVALS);
  });

  it("refuse an interval too short and a TTL shorter than one interval, naming the option", () => {
    const refused = (options: Partial<RegistryOptions>) => {
      try {
        resolveRegistryOptions({ ...REQUIRED, ...options });
      } catch (error) {
        expect(error).to.be.instanceOf(ConfigError);
        return (error as ConfigError).setting;
      }
      return undefined;
    };
    expect(refused({ heartbeatIntervalMs: 10 })).to.equal("heartbeatIntervalMs");
    expect(refused({ heartbeatIntervalMs: 1_000, ttlMs: 999 })).to.equal("ttlMs");
    expect(refused({ heartbeatIntervalMs: 1_000, ttlMs: 1_000 })).to.equal(undefined);
  });
});
