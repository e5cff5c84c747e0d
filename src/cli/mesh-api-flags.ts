import { ConfigError } from "../../services/shared/config-error.js";
import { parseBaseUrl } from "../../services/shared/config-values.js";
import { trustedCas } from "../../services/shared/tls-files.js";
import type { FlagSpecs, ParsedFlags } from "./flags.js";
import { requireString } from "./flags.js";
import { type ReadTextFile, readSecret } from "./secret-flag.js";
import { API_KEY_FLAGS, CA_FILE_FLAG, DEFAULT_MESH_URL, MESH_URL_FLAG } from "./shared-flags.js";

/** MESH_API_FLAGS are the flags of the commands that call the mesh's HTTP API as a user: where, with which key, trusting which CA. */
export const MESH_API_FLAGS: FlagSpecs = {
  mesh: {
    ...MESH_URL_FLAG,
    default: DEFAULT_MESH_URL,
    description: "the mesh's public URL (https://mesh.example.org), whose /api this command calls",
  },
  ...API_KEY_FLAGS,
  "ca-file": CA_FILE_FLAG,
};

/** MeshApiAccess is what a command needs to call the mesh's HTTP API: its base URL, the user's key, the CAs to trust. */
export interface MeshApiAccess {
  /** baseUrl is the mesh's public URL without a trailing slash or /v1. */
  readonly baseUrl: string;
  readonly apiKey: string;
  /** ca is undefined for Node's own trust store (with NODE_EXTRA_CA_CERTS), else the whole list to trust. */
  readonly ca: readonly string[] | undefined;
}

/** parseMeshApiAccess reads MESH_API_FLAGS; a missing key or a bad URL or CA file is a ConfigError naming the setting. */
export function parseMeshApiAccess(flags: ParsedFlags, readFile: ReadTextFile): MeshApiAccess {
  const baseUrl = parseBaseUrl(flags.setting("mesh"), requireString(flags, "mesh"));
  const apiKey = readSecret(flags, "api-key", readFile);
  if (apiKey === undefined) {
    const [direct, file] = [flags.spec("api-key").env, flags.spec("api-key-file").env];
    throw new ConfigError(
      "--api-key-file",
      `--api-key-file FILE (or ${file}) or ${direct} is required: your infermesh API key (\`infermesh dev\` keeps one in ./data/dev-api-key)`,
    );
  }
  return Object.freeze({ baseUrl, apiKey: apiKey.value, ca: trustedCas(flags.string("ca-file"), flags.setting("ca-file")) });
}
