import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, type BrowserContextOptions, chromium, type Page } from "playwright-core";

// Debian's chromium, driven by playwright-core. CI installs it; elsewhere a missing browser skips the browser tests.

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** skipWithoutChromium skips the suite when chromium is missing, and fails it under CI, which must have it. */
export function skipWithoutChromium(suite: Mocha.Context): void {
  if (spawnSync("sh", ["-c", "command -v chromium"], { stdio: "ignore" }).status === 0) return;
  const message = "chromium is not installed: apt-get install -y --no-install-recommends chromium";
  if (process.env.CI) throw new Error(message);
  console.warn(`skipping: ${message}`);
  suite.skip();
}

/** BrowserSession is a fresh Chromium profile of its own, and what its pages complained about. */
export interface BrowserSession {
  readonly context: BrowserContext;
  readonly page: Page;
  /** problems are console errors and failed requests, each with the URL involved, in order. */
  readonly problems: string[];
  close(): Promise<void>;
}

/**
 * openBrowser launches Chromium on an empty profile (a persistent context is how Playwright takes --user-data-dir)
 * and records every console error and failed request of its pages.
 */
export async function openBrowser(options: BrowserContextOptions = {}): Promise<BrowserSession> {
  const profile = await mkdtemp(join(tmpdir(), "infermesh-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    ...options,
  });
  const problems: string[] = [];
  const watch = (page: Page) => {
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()} (${message.location().url})`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) =>
      problems.push(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`),
    );
  };
  context.pages().forEach(watch);
  context.on("page", watch);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    problems,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
