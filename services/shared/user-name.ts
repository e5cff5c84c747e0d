/**
 * USER_NAME_PATTERN is what a user name may be: short, and safe to print in logs, tables and shell commands. The
 * registry's store enforces it; agents check the names their --share lists against it before sending them.
 */
export const USER_NAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;
