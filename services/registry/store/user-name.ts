import { InvalidUserNameError } from "./store-errors.js";

/** USER_NAME_PATTERN is what a user name may be: short, and safe to print in logs, tables and shell commands. */
export const USER_NAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

/** assertUserName throws InvalidUserNameError unless userName matches USER_NAME_PATTERN. */
export function assertUserName(userName: string): void {
  if (typeof userName !== "string" || !USER_NAME_PATTERN.test(userName)) {
    throw new InvalidUserNameError(String(userName));
  }
}
