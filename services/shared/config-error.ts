/**
 * ConfigError is a setting a service cannot start with: a flag, an environment variable or a config file's field
 * whose value is missing or wrong. Its message is one line that names the setting and what it expects, in the
 * setting's unit; the command line prints it as it is and exits 2.
 */
export class ConfigError extends Error {
  override readonly name: string = "ConfigError";
  /** setting names the flag, variable or field at fault, as it appears at the start of the message. */
  readonly setting: string;

  constructor(setting: string, message: string) {
    super(message);
    this.setting = setting;
  }
}
