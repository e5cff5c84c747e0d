import { USER_NAME_PATTERN } from "../../shared/user-name.js";
import { InvalidUserNameError } from "./store-errors.js";

/** assertUserName throws InvalidUserNameError unless userName matches USER_NAME_PATTERN. */
export function assertUserName(userName: string): void {
  if (typeof userName !== "string" || !USER_NAME_PATTERN.test(userName)) {
    throw new InvalidUserNameError(String(userName));
  }
}
