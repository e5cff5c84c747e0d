import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** PackageRoot is infermesh's own folder and version, as its package.json gives them. */
export interface PackageRoot {
  readonly dir: string;
  readonly version: string;
}

let found: PackageRoot | undefined;

/**
 * packageRoot finds infermesh's package.json above this module, which runs from the sources (tsx) or from dist/;
 * undefined when it is not there (a bundled copy, say).
 */
export function packageRoot(): PackageRoot | undefined {
  if (found) return found;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++, dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (manifest.name === "infermesh" && typeof manifest.version === "string") {
        found = { dir, version: manifest.version };
        return found;
      }
    } catch {
      // Not here; look one folder up.
    }
  }
  return undefined;
}
