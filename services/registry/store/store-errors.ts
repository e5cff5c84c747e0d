/**
 * store-errors holds the errors a RegistryStore throws for input it refuses, so that a service can tell a caller's
 * mistake (INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION) from a failure of the store itself.
 */

/** InvalidUserNameError reports a user name outside USER_NAME_PATTERN, so callers can tell bad input from failures. */
export class InvalidUserNameError extends Error {
  override readonly name = "InvalidUserNameError";

  constructor(readonly userName: string) {
    super(`invalid user name ${shownName(userName)}: use 1 to 64 characters from A-Z, a-z, 0-9, ".", "_", "@", "-"`);
  }
}

/** UserExistsError reports that an account cannot be created because its name is taken. */
export class UserExistsError extends Error {
  override readonly name = "UserExistsError";

  constructor(readonly userName: string) {
    super(`user ${shownName(userName)} already exists`);
  }
}

/** WeakPasswordError reports a password outside the length rule; its message states the rule, never the password. */
export class WeakPasswordError extends Error {
  override readonly name = "WeakPasswordError";

  constructor(
    readonly minLength: number,
    readonly maxLength: number,
  ) {
    super(`a password must be ${minLength} to ${maxLength} characters long`);
  }
}

/** SessionRefusedError reports that a session cannot start because its user id is unknown or the account is disabled. */
export class SessionRefusedError extends Error {
  override readonly name = "SessionRefusedError";

  constructor(readonly userId: string) {
    super(`cannot start a session for user id ${shownName(userId)}: the account is unknown or disabled`);
  }
}

/** shownName quotes a client-supplied name for a message, cut short so that a huge one cannot flood a log. */
function shownName(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}
