import { AGENT_COMMAND } from "./agent-command.js";
import type { CommandGroup } from "./command.js";
import { DEV_COMMAND } from "./dev-command.js";
import { GATEWAY_COMMAND } from "./gateway-command.js";
import { KEYS_COMMAND } from "./keys-command.js";
import { METRICS_CONFIG_COMMAND } from "./metrics-config-command.js";
import { MIGRATE_COMMAND } from "./migrate-command.js";
import { PROVIDERS_COMMAND } from "./providers-command.js";
import { REGISTRY_COMMAND } from "./registry-command.js";
import { SIM_COMMAND } from "./sim-command.js";
import { USAGE_COMMAND } from "./usage-command.js";
import { USERS_COMMAND } from "./users-command.js";

/** INFERMESH is the `infermesh` command and every command under it. */
export const INFERMESH: CommandGroup = {
  name: "infermesh",
  summary: "an open inference network with an OpenAI-compatible gateway",
  subcommands: [
    DEV_COMMAND,
    REGISTRY_COMMAND,
    GATEWAY_COMMAND,
    KEYS_COMMAND,
    USERS_COMMAND,
    AGENT_COMMAND,
    PROVIDERS_COMMAND,
    USAGE_COMMAND,
    MIGRATE_COMMAND,
    SIM_COMMAND,
    METRICS_CONFIG_COMMAND,
  ],
};
