import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type AccountService,
  UsageGroup,
  type UsageRecord,
  type UsageRow,
  UsageRowSchema,
  UsageScope,
  type User,
  UserSchema,
} from "../../gen/infermesh/v1/accounts_pb.js";
import { type Provider, ProviderSchema } from "../../gen/infermesh/v1/registry_pb.js";
import type { GrpcImplementation } from "../shared/grpc/server.js";
import { USER_NAME_PATTERN } from "../shared/user-name.js";
import type { CallerAuth } from "./caller-auth.js";
import { unauthenticated } from "./caller-auth.js";
import { type ProviderSettingsCache, sharingData, sharingMessage, withOwnerSharing } from "./provider-settings.js";
import type { ProviderTable } from "./provider-table.js";
import type { RegistryStore, UsageGroupBy, UsageQuery, UsageRecordData, UsageRowData, User as UserData } from "./store/registry-store.js";
import { InvalidUserNameError, SessionRefusedError, UserExistsError, WeakPasswordError } from "./store/store-errors.js";

/** INVITE_TTL_MS is how long an invite link works: a day. */
export const INVITE_TTL_MS = 24 * 60 * 60 * 1000;
/** SIGN_IN_LINK_TTL_MS is how long a one-time sign-in link works: a day. */
export const SIGN_IN_LINK_TTL_MS = 24 * 60 * 60 * 1000;
/** MAX_USAGE_BATCH bounds one RecordUsage call. */
export const MAX_USAGE_BATCH = 10_000;
/** MAX_USAGE_TEXT_CHARS bounds each id and name of a usage record. */
const MAX_USAGE_TEXT_CHARS = 512;
/** USAGE_TEXT_FIELDS are a usage record's ids and names. */
const USAGE_TEXT_FIELDS = [
  "id",
  "userId",
  "keyId",
  "providerId",
  "providerOwnerId",
  "providerName",
  "model",
  "operation",
] as const satisfies readonly (keyof UsageRecord)[];
/**
 * MAX_PASSWORD_UNITS bounds a password's UTF-16 units before the store sees it: a guard against huge input only, as the
 * store checks its rule (8 to 1,024 characters) itself.
 */
const MAX_PASSWORD_UNITS = 4096;

/** AccountServiceDeps are what the AccountService handlers work on. */
export interface AccountServiceDeps {
  readonly store: RegistryStore;
  readonly auth: CallerAuth;
  readonly table: ProviderTable;
  readonly settings: ProviderSettingsCache;
  /** sessionTtlMs is how long a session lasts. */
  readonly sessionTtlMs: number;
}

const GROUPS: Readonly<Record<UsageGroup, UsageGroupBy | undefined>> = {
  [UsageGroup.UNSPECIFIED]: undefined,
  [UsageGroup.DAY]: "day",
  [UsageGroup.HOUR]: "hour",
  [UsageGroup.MODEL]: "model",
  [UsageGroup.KEY]: "key",
  [UsageGroup.PROVIDER]: "provider",
  [UsageGroup.USER]: "user",
};

/**
 * createAccountService implements AccountService over the store. Only the mesh calls it: gateways, for the member
 * whose key or session they checked and whom each request names, and operators' tools.
 */
export function createAccountService(deps: AccountServiceDeps): GrpcImplementation<typeof AccountService.method> {
  const { store, auth, table, settings } = deps;
  const meshOnly = async (metadata: Parameters<CallerAuth["authenticate"]>[0]) => {
    const caller = await auth.authenticate(metadata);
    if (caller.kind !== "mesh") throw unauthenticated("AccountService takes the mesh token");
  };

  async function ownProvider(userId: string, providerId: string): Promise<void> {
    const owned = await store.ownedProviders(userId);
    if (!owned.includes(providerId)) throw new ConnectError(`you have no provider '${providerId}'`, Code.NotFound);
  }

  async function ownerView(providerId: string): Promise<Provider> {
    const decided = await settings.get(providerId);
    const held = table.get(providerId);
    if (held) return create(ProviderSchema, { ...held, endpoint: "", linkId: "" });
    return create(ProviderSchema, { id: providerId, name: providerId, paused: decided.paused, sharing: sharingMessage(decided.sharing) });
  }

  return {
    async createUser(request, { metadata }) {
      await meshOnly(metadata);
      const created = await accountCall(() => store.createUser(request.userName, INVITE_TTL_MS));
      return {
        user: userMessage(created.user),
        inviteToken: created.inviteToken,
        inviteExpireTime: timestampFromMs(created.inviteExpiresAtMs),
      };
    },

    async listUsers(_request, { metadata }) {
      await meshOnly(metadata);
      return { users: (await store.listUsers()).map(userMessage) };
    },

    async setUserDisabled(request, { metadata }) {
      await meshOnly(metadata);
      const user = await store.setUserDisabled(request.userName, request.disabled);
      if (!user) throw new ConnectError(`no user named '${request.userName}'`, Code.NotFound);
      return { user: userMessage(user) };
    },

    async signUp(request, { metadata }) {
      await meshOnly(metadata);
      checkPasswordLength(request.password);
      return { user: userMessage(await accountCall(() => store.signUp(request.userName, request.password))) };
    },

    async acceptInvite(request, { metadata }) {
      await meshOnly(metadata);
      checkPasswordLength(request.password);
      const user = await accountCall(() => store.acceptInvite(request.inviteToken, request.password));
      if (!user) throw new ConnectError("this invite is not valid: it was used, it expired, or it never existed", Code.NotFound);
      return { user: userMessage(user) };
    },

    async createSignInLink(request, { metadata }) {
      await meshOnly(metadata);
      if (!USER_NAME_PATTERN.test(request.userName)) {
        throw new ConnectError(new InvalidUserNameError(request.userName).message, Code.InvalidArgument);
      }
      const link = await store.createSignInLink(request.userName, SIGN_IN_LINK_TTL_MS);
      if (!link) throw new ConnectError(`no user named '${request.userName}'`, Code.NotFound);
      return { token: link.token, expireTime: timestampFromMs(link.expiresAtMs) };
    },

    async useSignInLink(request, { metadata }) {
      await meshOnly(metadata);
      const user = await store.useSignInLink(request.token);
      if (!user) throw unauthenticated("this sign-in link is not valid: it was used, it expired, or it never existed");
      return { user: userMessage(user) };
    },

    async checkPassword(request, { metadata }) {
      await meshOnly(metadata);
      if (request.password.length > MAX_PASSWORD_UNITS) throw unauthenticated("wrong user name or password");
      const user = await store.checkPassword(request.userName, request.password);
      if (!user) throw unauthenticated("wrong user name or password");
      return { user: userMessage(user) };
    },

    async createSession(request, { metadata }) {
      await meshOnly(metadata);
      const session = await accountCall(() => store.createSession(request.userId, deps.sessionTtlMs));
      return { sessionId: session.sessionId, expireTime: timestampFromMs(session.expiresAtMs) };
    },

    async resolveSession(request, { metadata }) {
      await meshOnly(metadata);
      const principal = await store.resolveSession(request.sessionId);
      if (!principal) throw unauthenticated("the session is not valid: signed out, expired, or never started");
      return { principal };
    },

    async revokeSessions(request, { metadata }) {
      await meshOnly(metadata);
      let revoked = 0;
      if (request.sessionId) revoked += (await store.revokeSession(request.sessionId)) ? 1 : 0;
      if (request.userName) revoked += await store.revokeUserSessions(request.userName);
      return { revoked };
    },

    async recordUsage(request, { metadata }) {
      await meshOnly(metadata);
      if (request.records.length > MAX_USAGE_BATCH) {
        throw new ConnectError(`a usage batch holds at most ${MAX_USAGE_BATCH} records`, Code.InvalidArgument);
      }
      const tooLong = request.records.find((record) => USAGE_TEXT_FIELDS.some((field) => record[field].length > MAX_USAGE_TEXT_CHARS));
      if (tooLong)
        throw new ConnectError(`a usage record's ids and names have at most ${MAX_USAGE_TEXT_CHARS} characters`, Code.InvalidArgument);
      return { stored: await store.recordUsage(request.records.map(usageRecordData)) };
    },

    async queryUsage(request, { metadata }) {
      await meshOnly(metadata);
      return { rows: (await store.queryUsage(usageQuery(request))).map(usageRow) };
    },

    async listOwnProviders(request, { metadata }) {
      await meshOnly(metadata);
      const ids = await store.ownedProviders(request.userId);
      return { providers: await Promise.all([...ids].sort().map(ownerView)) };
    },

    async setProviderPaused(request, { metadata }) {
      await meshOnly(metadata);
      await ownProvider(request.userId, request.providerId);
      const decided = { ...(await settings.get(request.providerId)), paused: request.paused };
      await settings.save(request.providerId, decided);
      table.applySettings(request.providerId, decided);
      return { provider: await ownerView(request.providerId) };
    },

    async setProviderSharing(request, { metadata }) {
      await meshOnly(metadata);
      await ownProvider(request.userId, request.providerId);
      const sharing = sharingData(request.sharing);
      if (!sharing) throw new ConnectError("sharing.visibility must be private, users or public", Code.InvalidArgument);
      checkAllowedUsers(sharing.allowedUsers);
      const decided = withOwnerSharing(await settings.get(request.providerId), sharing, table.instanceId(request.providerId));
      await settings.save(request.providerId, decided);
      table.applySettings(request.providerId, decided);
      return { provider: await ownerView(request.providerId) };
    },
  };
}

/** accountCall runs a store call, turning the store's refusals of bad input into the matching gRPC codes. */
async function accountCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof InvalidUserNameError || error instanceof WeakPasswordError) {
      throw new ConnectError(error.message, Code.InvalidArgument);
    }
    if (error instanceof UserExistsError) throw new ConnectError(error.message, Code.AlreadyExists);
    if (error instanceof SessionRefusedError) throw new ConnectError(error.message, Code.FailedPrecondition);
    throw error;
  }
}

/** MAX_ALLOWED_USERS bounds the users one provider is shared with by name. */
const MAX_ALLOWED_USERS = 256;

function checkAllowedUsers(names: readonly string[]): void {
  if (names.length > MAX_ALLOWED_USERS) {
    throw new ConnectError(`a provider is shared with at most ${MAX_ALLOWED_USERS} users by name`, Code.InvalidArgument);
  }
  const bad = names.find((name) => !USER_NAME_PATTERN.test(name));
  if (bad !== undefined) throw new ConnectError(new InvalidUserNameError(bad).message, Code.InvalidArgument);
}

function checkPasswordLength(password: string): void {
  if (password.length > MAX_PASSWORD_UNITS) throw new ConnectError("a password has at most 1024 characters", Code.InvalidArgument);
}

function userMessage(user: UserData): User {
  return create(UserSchema, {
    id: user.id,
    name: user.name,
    createTime: timestampFromMs(user.createdAtMs),
    ...(user.disabledAtMs === undefined ? {} : { disableTime: timestampFromMs(user.disabledAtMs) }),
    hasPassword: user.hasPassword === true,
  });
}

function msOf(time: Timestamp | undefined, fallback: number): number {
  return time ? timestampDate(time).getTime() : fallback;
}

function usageRecordData(record: UsageRecord): UsageRecordData {
  return {
    id: record.id,
    timeMs: msOf(record.time, 0),
    userId: record.userId,
    keyId: record.keyId,
    providerId: record.providerId,
    providerOwnerId: record.providerOwnerId,
    providerName: record.providerName,
    model: record.model,
    operation: record.operation,
    status: record.status,
    promptTokens: record.promptTokens,
    completionTokens: record.completionTokens,
    audioSeconds: record.audioSeconds,
    images: record.images,
    ttfbMs: record.ttfbMs,
    durationMs: record.durationMs,
  };
}

function usageRow(row: UsageRowData): UsageRow {
  return create(UsageRowSchema, {
    group: [...row.group],
    requests: BigInt(row.requests),
    errors: BigInt(row.errors),
    promptTokens: BigInt(row.promptTokens),
    completionTokens: BigInt(row.completionTokens),
    audioSeconds: row.audioSeconds,
    images: BigInt(row.images),
    ttfbMsAvg: row.ttfbMsAvg,
    durationMsAvg: row.durationMsAvg,
  });
}

function usageQuery(request: {
  userId: string;
  scope: UsageScope;
  startTime?: Timestamp | undefined;
  endTime?: Timestamp | undefined;
  groupBy: UsageGroup[];
}): UsageQuery {
  const scopes: Readonly<Record<UsageScope, UsageQuery["scope"]>> = {
    [UsageScope.UNSPECIFIED]: "caller",
    [UsageScope.CALLER]: "caller",
    [UsageScope.PROVIDER_OWNER]: "provider_owner",
    [UsageScope.ALL]: "all",
  };
  const scope = scopes[request.scope];
  if (scope === undefined) throw new ConnectError(`unknown usage scope ${request.scope}`, Code.InvalidArgument);
  if (scope !== "all" && request.userId === "") throw new ConnectError("user_id is required unless scope is ALL", Code.InvalidArgument);
  const groupBy: UsageGroupBy[] = [];
  for (const group of request.groupBy) {
    const name = GROUPS[group];
    if (!name) throw new ConnectError(`unknown usage group ${group}`, Code.InvalidArgument);
    if (!groupBy.includes(name)) groupBy.push(name);
  }
  return {
    scope,
    userId: request.userId,
    fromMs: msOf(request.startTime, 0),
    toMs: msOf(request.endTime, Number.MAX_SAFE_INTEGER),
    groupBy,
  };
}
