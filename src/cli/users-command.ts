import { randomBytes } from "node:crypto";
import { INVITE_PATH, SIGN_IN_LINK_PATH } from "../../services/gateway/dashboard-paths.js";
import { INVITE_TTL_MS, SIGN_IN_LINK_TTL_MS } from "../../services/registry/account-service.js";
import type { RegistryStore } from "../../services/registry/store/registry-store.js";
import { parseBaseUrl } from "../../services/shared/config-values.js";
import type { CommandGroup, CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpecs, parseFlags, requirePositionals, requireString } from "./flags.js";
import { registryDatabase, withRegistryDatabase } from "./registry-database.js";
import { DB_FLAG, PUBLIC_URL_FLAG } from "./shared-flags.js";
import { formatTable, isoTime } from "./text-table.js";

/** GENERATED_PASSWORD_BYTES make a password of 16 base64url characters: 96 random bits. */
const GENERATED_PASSWORD_BYTES = 12;

/** USERS_FLAGS are the flags of every `infermesh users` command but add and sign-in-link. */
export const USERS_FLAGS: FlagSpecs = { db: DB_FLAG };

/** USERS_ADD_FLAGS are the flags of `infermesh users add` and `sign-in-link`, which print links. */
export const USERS_ADD_FLAGS: FlagSpecs = { db: DB_FLAG, url: PUBLIC_URL_FLAG };

/** USER_LIST_HINT says where user names are found, for messages about a missing or unknown one. */
const USER_LIST_HINT = "`infermesh users list` shows them";

/**
 * inviteLink is the link that sets a new account's password. The token is in the fragment, which browsers never send,
 * so that it reaches no server's or proxy's access log; the dashboard's page reads it from there.
 */
export function inviteLink(publicUrl: string, inviteToken: string): string {
  return `${publicUrl}${INVITE_PATH}#token=${encodeURIComponent(inviteToken)}`;
}

/**
 * signInLink is the link that signs an account in to the dashboard once. Its token is in the fragment, like an
 * invite's, so that it reaches no access log; the dashboard's page posts it to POST /api/auth/sign-in-link.
 */
export function signInLink(publicUrl: string, token: string): string {
  return `${publicUrl}${SIGN_IN_LINK_PATH}#token=${encodeURIComponent(token)}`;
}

/** generatePassword is a random password of 16 base64url characters, for `users password`. */
export function generatePassword(): string {
  return randomBytes(GENERATED_PASSWORD_BYTES).toString("base64url");
}

/** runUsersAdd creates an account and prints its one-time invite link, on a line of its own, and when it expires. */
export async function runUsersAdd(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(USERS_ADD_FLAGS, argv, env, true);
  const [name] = requirePositionals(flags, ["NAME"], "the new account's name") as [string];
  const publicUrl = parseBaseUrl(flags.setting("url"), requireString(flags, "url"));
  await withRegistryDatabase(registryDatabase(flags), async (store) => {
    if ((await store.findUser(name)) !== undefined) throw new Error(`a user named '${name}' already exists (${USER_LIST_HINT})`);
    const { user, inviteToken, inviteExpiresAtMs } = await store.createUser(name, INVITE_TTL_MS);
    output.stdout(
      `created ${user.name}; this link sets their password, once, until ${isoTime(inviteExpiresAtMs)} (${INVITE_TTL_MS / 3_600_000} h; shown this once):\n` +
        `${inviteLink(publicUrl, inviteToken)}\n`,
    );
  });
}

/**
 * runUsersSignInLink prints a one-time link that signs an existing account in to the dashboard, on a line of its own,
 * and when it expires. The account's password, if it has one, stays as it is.
 */
export async function runUsersSignInLink(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(USERS_ADD_FLAGS, argv, env, true);
  const [name] = requirePositionals(flags, ["NAME"], USER_LIST_HINT) as [string];
  const publicUrl = parseBaseUrl(flags.setting("url"), requireString(flags, "url"));
  const { user, link } = await withRegistryDatabase(registryDatabase(flags), async (store) => {
    const user = known(await store.findUser(name), name);
    return { user, link: known(await store.createSignInLink(name, SIGN_IN_LINK_TTL_MS), name) };
  });
  output.stdout(
    `this link signs ${user.name} in, once, until ${isoTime(link.expiresAtMs)} (${SIGN_IN_LINK_TTL_MS / 3_600_000} h; shown this once):\n` +
      `${signInLink(publicUrl, link.token)}\n`,
  );
  if (user.disabledAtMs !== undefined) {
    output.stderr(`${user.name} is disabled: the link works once \`infermesh users enable ${user.name}\` enables the account\n`);
  }
}

/** runUsersList prints a table of accounts: name, creation, when disabled, whether a password is set. */
export async function runUsersList(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(USERS_FLAGS, argv, env);
  const users = await withRegistryDatabase(registryDatabase(flags), (store) => store.listUsers());
  output.stdout(
    formatTable(
      ["NAME", "CREATED", "DISABLED", "HAS_PASSWORD"],
      users.map((user) => [user.name, isoTime(user.createdAtMs), isoTime(user.disabledAtMs), user.hasPassword ? "yes" : "no"]),
    ),
  );
}

/** runUsersDisable disables an account: its API keys, password and sessions stop working until it is enabled again. */
export async function runUsersDisable(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  await setDisabled(argv, env, output, true);
}

/** runUsersEnable enables a disabled account again. */
export async function runUsersEnable(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  await setDisabled(argv, env, output, false);
}

async function setDisabled(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput, disabled: boolean): Promise<void> {
  const flags = parseFlags(USERS_FLAGS, argv, env, true);
  const [name] = requirePositionals(flags, ["NAME"], USER_LIST_HINT) as [string];
  const user = await withRegistryDatabase(registryDatabase(flags), (store) => store.setUserDisabled(name, disabled));
  output.stdout(`${disabled ? "disabled" : "enabled"} ${known(user, name).name}\n`);
}

/** runUsersLogout ends every session of an account, in every browser, and says how many there were. */
export async function runUsersLogout(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(USERS_FLAGS, argv, env, true);
  const [name] = requirePositionals(flags, ["NAME"], USER_LIST_HINT) as [string];
  const ended = await withRegistryDatabase(registryDatabase(flags), async (store) => {
    known(await store.findUser(name), name);
    return store.revokeUserSessions(name);
  });
  output.stdout(`${signedOut(name, ended)}\n`);
}

/**
 * runUsersPassword sets a new random password for an account and prints it once; the account's sessions end, since a
 * password is reset when the old one may be known to someone else.
 */
export async function runUsersPassword(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(USERS_FLAGS, argv, env, true);
  const [name] = requirePositionals(flags, ["NAME"], USER_LIST_HINT) as [string];
  const password = generatePassword();
  const ended = await withRegistryDatabase(registryDatabase(flags), async (store: RegistryStore) => {
    known(await store.setPassword(name, password), name);
    return store.revokeUserSessions(name);
  });
  output.stdout(`new password of ${name} (shown this once, stored hashed): ${password}\n${signedOut(name, ended)}\n`);
}

/** known is what the store found for a user name, or an error naming the unknown name. */
function known<T>(found: T | undefined, name: string): T {
  if (found === undefined) throw new Error(`no user named '${name}' (${USER_LIST_HINT})`);
  return found;
}

/** signedOut says how many sessions of a user ended. */
function signedOut(name: string, count: number): string {
  return count === 0 ? `${name} had no session signed in` : `ended ${count} session${count === 1 ? "" : "s"} of ${name}`;
}

/** USERS_COMMAND is `infermesh users`: accounts, straight in the registry's database. */
export const USERS_COMMAND: CommandGroup = {
  name: "users",
  summary: "add, list, disable, enable and sign out accounts, set passwords and make sign-in links, in the registry's database",
  subcommands: [
    {
      name: "add",
      summary: "create an account and print its invite link, which sets its password (valid 24 h, shown this once)",
      synopsis: "users add NAME [--url URL] [--db FILE|URL]",
      flags: USERS_ADD_FLAGS,
      run: runUsersAdd,
    },
    {
      name: "sign-in-link",
      summary: "print a link that signs an account in to the dashboard, once (valid 24 h, shown this once); its password stays",
      synopsis: "users sign-in-link NAME [--url URL] [--db FILE|URL]",
      flags: USERS_ADD_FLAGS,
      run: runUsersSignInLink,
    },
    {
      name: "list",
      summary: "list accounts: name, created, disabled, whether a password is set",
      synopsis: "users list [--db FILE|URL]",
      flags: USERS_FLAGS,
      run: runUsersList,
    },
    {
      name: "disable",
      summary: "disable an account: its API keys, password and sessions stop working until it is enabled",
      synopsis: "users disable NAME [--db FILE|URL]",
      flags: USERS_FLAGS,
      run: runUsersDisable,
    },
    {
      name: "enable",
      summary: "enable a disabled account",
      synopsis: "users enable NAME [--db FILE|URL]",
      flags: USERS_FLAGS,
      run: runUsersEnable,
    },
    {
      name: "logout",
      summary: "end every session of an account, in every browser, and say how many there were",
      synopsis: "users logout NAME [--db FILE|URL]",
      flags: USERS_FLAGS,
      run: runUsersLogout,
    },
    {
      name: "password",
      summary: "set a new random password for an account and print it (shown this once); its sessions end",
      synopsis: "users password NAME [--db FILE|URL]",
      flags: USERS_FLAGS,
      run: runUsersPassword,
    },
  ] satisfies RunnableCommand[],
};
