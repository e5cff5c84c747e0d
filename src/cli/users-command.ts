import { randomBytes } from "node:crypto";
import type { RegistryStore, User } from "../../services/registry/store/registry-store.js";
import { parseBaseUrl } from "../../services/shared/config-values.js";
import type { CommandGroup, CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpecs, parseFlags, requirePositionals, requireString } from "./flags.js";
import { registryDatabase, withRegistryDatabase } from "./registry-database.js";
import { DB_FLAG, PUBLIC_URL_FLAG } from "./shared-flags.js";
import { formatTable, isoTime } from "./text-table.js";

/** INVITE_TTL_MS is how long an invite link from `infermesh users add` sets a password: 24 hours. */
export const INVITE_TTL_MS = 24 * 3600 * 1000;
/** INVITE_PATH is the dashboard's page an invite link opens; the token follows in the fragment. */
export const INVITE_PATH = "/invite";
/** GENERATED_PASSWORD_BYTES make a password of 16 base64url characters: 96 random bits. */
const GENERATED_PASSWORD_BYTES = 12;

/** USERS_FLAGS are the flags of every `infermesh users` command but add. */
export const USERS_FLAGS: FlagSpecs = { db: DB_FLAG };

/** USERS_ADD_FLAGS are `infermesh users add`'s flags. */
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

/** generatePassword is a random password of 16 base64url characters, for `users password` and `infermesh dev`. */
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

/** known is the user the store found, or an error naming the unknown name. */
function known(user: User | undefined, name: string): User {
  if (user === undefined) throw new Error(`no user named '${name}' (${USER_LIST_HINT})`);
  return user;
}

/** signedOut says how many sessions of a user ended. */
function signedOut(name: string, count: number): string {
  return count === 0 ? `${name} had no session signed in` : `ended ${count} session${count === 1 ? "" : "s"} of ${name}`;
}

/** USERS_COMMAND is `infermesh users`: accounts, straight in the registry's database. */
export const USERS_COMMAND: CommandGroup = {
  name: "users",
  summary: "add, list, disable, enable and sign out accounts, and set passwords, in the registry's database",
  subcommands: [
    {
      name: "add",
      summary: "create an account and print its invite link, which sets its password (valid 24 h, shown this once)",
      synopsis: "users add NAME [--url URL] [--db FILE]",
      flags: USERS_ADD_FLAGS,
      run: runUsersAdd,
    },
    {
      name: "list",
      summary: "list accounts: name, created, disabled, whether a password is set",
      synopsis: "users list [--db FILE]",
      flags: USERS_FLAGS,
      run: runUsersList,
    },
    {
      name: "disable",
      summary: "disable an account: its API keys, password and sessions stop working until it is enabled",
      synopsis: "users disable NAME [--db FILE]",
      flags: USERS_FLAGS,
      run: runUsersDisable,
    },
    {
      name: "enable",
      summary: "enable a disabled account",
      synopsis: "users enable NAME [--db FILE]",
      flags: USERS_FLAGS,
      run: runUsersEnable,
    },
    {
      name: "logout",
      summary: "end every session of an account, in every browser, and say how many there were",
      synopsis: "users logout NAME [--db FILE]",
      flags: USERS_FLAGS,
      run: runUsersLogout,
    },
    {
      name: "password",
      summary: "set a new random password for an account and print it (shown this once); its sessions end",
      synopsis: "users password NAME [--db FILE]",
      flags: USERS_FLAGS,
      run: runUsersPassword,
    },
  ] satisfies RunnableCommand[],
};
