import { ConfigError } from "../../services/shared/config-error.js";
import { listInWords } from "../../services/shared/config-values.js";
import { LOG_LEVELS } from "../../services/shared/logger.js";
import type { FlagSpec, FlagSpecs, ParsedFlags } from "./flags.js";
import { type ReadTextFile, readSecret } from "./secret-flag.js";

// The flags that mean one thing wherever they appear, and whose variable is named for what it holds, so that one
// export serves every command that takes it. Every other flag's variable carries its command's name.

/** DEFAULT_DB_PATH is where the registry keeps users and keys unless told otherwise. */
export const DEFAULT_DB_PATH = "./data/infermesh.db";
/** MIN_MESH_TOKEN_LENGTH keeps guessable mesh tokens out. */
export const MIN_MESH_TOKEN_LENGTH = 16;

/** DB_FLAG is the registry's database, a SQLite file or a postgres:// URL, which `registry` serves from and `keys` edits. */
export const DB_FLAG: FlagSpec = {
  type: "string",
  default: DEFAULT_DB_PATH,
  value: "FILE|URL",
  description: "SQLite file, or postgres:// URL of a PostgreSQL database, with users, API keys and usage",
  env: "INFERMESH_DB",
};

/** MESH_TOKEN_FLAGS are the secret registry and gateways share, given as itself or, off the command line, as a file. */
export const MESH_TOKEN_FLAGS: FlagSpecs = {
  "mesh-token": {
    type: "string",
    value: "TOKEN",
    description: `the secret gateways present to the registry, at least ${MIN_MESH_TOKEN_LENGTH} characters (\`ps\` shows flags: prefer the variable or --mesh-token-file)`,
    env: "INFERMESH_MESH_TOKEN",
  },
  "mesh-token-file": {
    type: "string",
    value: "FILE",
    description: "a file holding the mesh token (its content trimmed)",
    env: "INFERMESH_MESH_TOKEN_FILE",
  },
};

/**
 * API_KEY_FLAGS are the user's own infermesh API key, given as itself or, off the command line, as a file. A model
 * server's key (the simulator's --api-key) is another thing and has its own variable.
 */
export const API_KEY_FLAGS: FlagSpecs = {
  "api-key": {
    type: "string",
    value: "KEY",
    description: "your infermesh API key (`ps` shows flags: prefer the variable or --api-key-file)",
    env: "INFERMESH_API_KEY",
  },
  "api-key-file": {
    type: "string",
    value: "FILE",
    description: "a file holding your infermesh API key (its content trimmed)",
    env: "INFERMESH_API_KEY_FILE",
  },
};

/** REGISTRY_ADDRESS_FLAG is the registry agents and gateways connect to. */
export const REGISTRY_ADDRESS_FLAG: FlagSpec = {
  type: "string",
  value: "URL",
  description: "the registry's gRPC address, http://HOST:PORT, https://HOST:PORT or HOST:PORT",
  env: "INFERMESH_REGISTRY",
};

/** CA_FILE_FLAG adds a certificate authority to those a client trusts for https:// addresses (a private CA, a test one). */
export const CA_FILE_FLAG: FlagSpec = {
  type: "string",
  value: "FILE",
  description: "PEM file of certificate authorities to trust for https:// addresses, besides the system's (NODE_EXTRA_CA_CERTS works too)",
  env: "INFERMESH_CA_FILE",
};

/** DEFAULT_MESH_URL is the mesh's public URL unless told otherwise: `infermesh dev`'s gateway. */
export const DEFAULT_MESH_URL = "http://127.0.0.1:8080";

/** PUBLIC_URL_FLAG is the mesh's public URL as people open it in a browser, which links made for them start with. */
export const PUBLIC_URL_FLAG: FlagSpec = {
  type: "string",
  default: DEFAULT_MESH_URL,
  value: "URL",
  description: "the mesh's public URL as people open it in a browser (https://mesh.example.org); invite and sign-in links start with it",
  env: "INFERMESH_PUBLIC_URL",
};

/** MESH_URL_FLAG is the mesh's public URL an agent dials. */
export const MESH_URL_FLAG: FlagSpec = {
  type: "string",
  value: "URL",
  description:
    "the mesh's public URL, the one OpenAI clients use (https://mesh.example.org, with or without /v1); the agent dials it and opens no port",
  env: "INFERMESH_MESH",
};

/** REDIS_FLAG is where registries share presence and gateways share limits, once there are several of them. */
export const REDIS_FLAG: FlagSpec = {
  type: "string",
  value: "URL",
  description:
    "redis:// (or rediss://) URL of the Redis (or Valkey) that several registries or gateways share; none: one process keeps it in memory",
  env: "INFERMESH_REDIS",
};

/** LOG_LEVEL_FLAG is --log-level; each command adds its own default. */
export const LOG_LEVEL_FLAG: FlagSpec = {
  type: "string",
  value: "LEVEL",
  description: `level of the JSON logs on stderr: ${listInWords(LOG_LEVELS)}`,
  env: "INFERMESH_LOG_LEVEL",
};

/** SHARED_VARIABLES are the environment variables named for what they hold rather than for one command. */
export const SHARED_VARIABLES: readonly string[] = [
  DB_FLAG.env,
  REDIS_FLAG.env,
  ...Object.values(MESH_TOKEN_FLAGS).map((spec) => spec.env),
  ...Object.values(API_KEY_FLAGS).map((spec) => spec.env),
  REGISTRY_ADDRESS_FLAG.env,
  CA_FILE_FLAG.env,
  MESH_URL_FLAG.env,
  PUBLIC_URL_FLAG.env,
  LOG_LEVEL_FLAG.env,
];

/** requireMeshToken reads the mesh token from --mesh-token or --mesh-token-file (or their variables), refusing guessable ones. */
export function requireMeshToken(flags: ParsedFlags, readFile: ReadTextFile): string {
  const meshToken = readSecret(flags, "mesh-token", readFile);
  if (meshToken === undefined) {
    const [direct, file] = [flags.spec("mesh-token").env, flags.spec("mesh-token-file").env];
    throw new ConfigError(
      "--mesh-token",
      `--mesh-token (or ${direct}) is required; --mesh-token-file FILE (or ${file}) keeps it off the command line`,
    );
  }
  const { value, setting } = meshToken;
  if (value.length < MIN_MESH_TOKEN_LENGTH) {
    throw new ConfigError(
      setting,
      `the mesh token from ${setting} is ${value.length} characters long; it must be at least ${MIN_MESH_TOKEN_LENGTH}`,
    );
  }
  return value;
}
