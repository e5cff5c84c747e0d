import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "chai";
import OpenAI from "openai";
import type { Locator, Page } from "playwright-core";
import { type BrowserSession, openBrowser, skipWithoutChromium } from "./support/chromium.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

// The dashboard as members use it, in a real Chromium against a real mesh: one member's whole path from a sign-in
// link to a cancelled stream, and a second member who must see nothing of the first's. Every page is screenshotted
// at a desktop and a phone width into test-output/dashboard/, and any console error or failed request the test did
// not cause on purpose fails it.

const SCREENSHOTS = join(process.cwd(), "test-output", "dashboard");
const WIDTHS = [1280, 390] as const;
/** PAGES are the signed-in pages: their path, their navigation link and their heading. */
const PAGES = [
  ["playground", "Playground", "Playground"],
  ["providers", "My providers", "My providers"],
  ["models", "Models", "Models"],
  ["usage", "Usage", "Usage"],
  ["settings/tokens", "Settings → Tokens", "Tokens"],
] as const;

/** UNNAMED_CONTROLS lists the visible form controls and buttons of the page that have no accessible name. */
const UNNAMED_CONTROLS = `[...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => {
    const byLabel = [...(el.labels ?? [])].map((label) => label.textContent).join("").trim();
    const byIds = (el.getAttribute("aria-labelledby") ?? "").split(" ").map((id) => document.getElementById(id)?.textContent ?? "").join("").trim();
    const own = el.tagName === "BUTTON" ? el.textContent.trim() : "";
    return !(byLabel || el.getAttribute("aria-label") || byIds || own || el.getAttribute("title"));
  })
  .map((el) => el.outerHTML.slice(0, 160))`;

/**
 * shoot screenshots the page at a desktop and a phone width, and fails when the page is wider than a 360 px screen
 * or has a control with no accessible name.
 */
async function shoot(page: Page, name: string): Promise<void> {
  expect(await page.evaluate(UNNAMED_CONTROLS), `every control of ${name} has a name`).to.deep.equal([]);
  for (const width of [...WIDTHS, 360]) {
    await page.setViewportSize({ width, height: 900 });
    // A string, evaluated in the page: the tests' TypeScript has no DOM.
    const overflow = (await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")) as number;
    expect(overflow, `${name} fits ${width} px without scrolling sideways`).to.be.at.most(0);
    if ((WIDTHS as readonly number[]).includes(width)) {
      await page.screenshot({ path: join(SCREENSHOTS, `${name}-${width}.png`), fullPage: true });
    }
  }
  await page.setViewportSize({ width: WIDTHS[0], height: 900 });
}

/** focused tells whether the control has the keyboard focus. */
function focused(control: Locator): Promise<boolean> {
  // Runs in the page; the tests' TypeScript has no DOM, so the page's document is reached through globalThis.
  return control.evaluate((el) => el === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement);
}

/** tabTo presses Tab until the control is focused, as a keyboard user gets there, and fails if it never is. */
async function tabTo(page: Page, control: Locator, presses = 40): Promise<void> {
  for (let press = 0; press < presses; press++) {
    await page.keyboard.press("Tab");
    if (await focused(control)) return;
  }
  throw new Error(`${presses} presses of Tab never reached ${control}`);
}

/** visit opens a dashboard page by its navigation link, as a member does, and waits for its heading. */
async function visit(page: Page, link: string, heading: string): Promise<void> {
  await page.getByRole("navigation", { name: "Dashboard" }).getByRole("link", { name: link }).click();
  await page.getByRole("heading", { level: 1, name: heading }).waitFor();
}

describe("the dashboard in headless Chromium", function () {
  this.timeout(240_000);
  let mesh: Mesh;
  let ada: MeshAgent;
  let adaKey: string;
  let bobKey: string;
  const browsers: BrowserSession[] = [];

  before(async function () {
    skipWithoutChromium(this);
    await mkdir(SCREENSHOTS, { recursive: true });
    mesh = await startMesh();
    adaKey = await mesh.registry.keyFor("ada");
    bobKey = await mesh.registry.keyFor("bob");
    // Slow enough that a reply streams for seconds: the test watches it arrive, then stops it.
    ada = await mesh.addAgent({
      user: "ada",
      apiKey: adaKey,
      sim: { models: [{ id: "ada-secret-model" }], tokensPerSecond: 20, completionTokens: 400 },
    });
    await mesh.addAgent({ user: "bob", apiKey: bobKey, sim: { models: [{ id: "bob-model" }] } });
    await mesh.registry.store.setPassword("bob", "bob's password");
  });

  afterEach(async () => {
    for (const browser of browsers.splice(0)) await browser.close();
  });

  after(async () => {
    await mesh?.stop();
  });

  it("takes a member from a sign-in link through tokens, usage, pause and resume to a stream they stop", async () => {
    const browser = await openBrowser();
    browsers.push(browser);
    const { page, problems } = browser;
    const base = mesh.gateway.baseUrl;

    // Sign in with a one-time link, as `infermesh dev` prints one: it lands in the playground, and works once.
    const link = await mesh.registry.store.createSignInLink("ada", 3600_000);
    if (!link) throw new Error("no sign-in link for ada");
    const { token } = link;
    await page.goto(`${base}/dashboard/sign-in#token=${token}`);
    await page.getByRole("heading", { level: 1, name: "Playground" }).waitFor();
    expect(new URL(page.url()).hash, "the spent token leaves the address bar").to.equal("");
    await page.getByText("Signed in as ada").waitFor();

    // Settings → Tokens: a labelled token, shown once; the OpenAI SDK works with it.
    await visit(page, "Settings → Tokens", "Tokens");
    await page.getByLabel("Label for a new token").fill("sdk-laptop");
    await page.getByRole("button", { name: "Create token" }).click();
    const secret = (await page.locator("#new-token").filter({ hasText: /^im_/ }).textContent({ timeout: 15_000 })) as string;
    await page.getByRole("cell", { name: "sdk-laptop", exact: true }).waitFor();
    const sdk = new OpenAI({ baseURL: `${base}/v1`, apiKey: secret, maxRetries: 0 });
    const completion = await sdk.chat.completions.create({
      model: "ada-secret-model",
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 5,
    });
    expect(completion.choices[0]?.message.content).to.be.a("string").and.not.equal("");
    await shoot(page, "ada-tokens");

    // Usage: the call shows, under its model and its token's label.
    await visit(page, "Usage", "Usage");
    const byModel = page.getByRole("table", { name: "By model" });
    await waitFor(
      "the SDK's call in Usage",
      async () => {
        await page.getByRole("button", { name: "Refresh" }).click();
        return (await byModel.getByRole("rowheader", { name: "ada-secret-model", exact: true }).count()) > 0;
      },
      15_000,
    );
    await page.getByRole("table", { name: "By key" }).getByRole("rowheader", { name: "sdk-laptop", exact: true }).waitFor();
    await shoot(page, "ada-usage");

    // Pause: the playground's chat says why nothing answers.
    await visit(page, "My providers", "My providers");
    await page.getByRole("button", { name: "Pause ada-agent-0" }).click();
    await page.getByRole("button", { name: "Resume ada-agent-0" }).waitFor();
    await page.locator(".badge", { hasText: "paused" }).waitFor();
    await shoot(page, "ada-providers-paused");
    await visit(page, "Playground", "Playground");
    await page.getByLabel("Model").first().selectOption("ada-secret-model");
    await page.getByLabel("Message").fill("Are you there?");
    await page.getByRole("button", { name: "Send" }).click();
    await page.getByRole("alert").filter({ hasText: "paused" }).waitFor();
    expect(problems.splice(0), "the refused chat, and nothing else")
      .to.have.length(1)
      .and.match(/404.*\/v1\/chat\/completions/);

    // Resume, then a streamed chat: text arrives while the answer is still running, and Stop cancels it upstream.
    await visit(page, "My providers", "My providers");
    await page.getByRole("button", { name: "Resume ada-agent-0" }).click();
    await page.getByRole("button", { name: "Pause ada-agent-0" }).waitFor();
    await page.locator(".badge", { hasText: "online" }).waitFor();
    await shoot(page, "ada-providers");
    await visit(page, "Playground", "Playground");
    await page.getByLabel("Model").first().selectOption("ada-secret-model");
    await page.getByLabel("Message").fill("Tell me a long story.");
    const conversation = page.getByRole("log", { name: "Conversation" });
    const stop = page.getByRole("button", { name: "Stop" });
    await page.getByRole("button", { name: "Send" }).click();
    const textNow = async () => ((await conversation.textContent()) ?? "").length;
    const before = await waitFor(
      "the first tokens on the page",
      async () => (await stop.isEnabled()) && (await textNow()) > 30 && (await textNow()),
      15_000,
    );
    await waitFor("more tokens while the answer runs", async () => (await stop.isEnabled()) && (await textNow()) > before, 10_000);
    const stoppedAt = Date.now();
    await stop.click();
    const abort = await ada.simulator.waitForAbort((aborted) => aborted.atMs >= stoppedAt - 50, 5_000);
    expect(abort.path).to.equal("/v1/chat/completions");
    await conversation.getByText("(stopped)").waitFor();
    expect(await stop.isEnabled(), "Stop is off once the answer ended").to.equal(false);
    await shoot(page, "ada-playground");
    expect(problems.splice(0), "the stopped stream, and nothing else")
      .to.have.length(1)
      .and.match(/request failed: POST .*\/v1\/chat\/completions net::ERR_ABORTED/);

    // My providers is live: a pause made elsewhere (the CLI, another browser) shows without a reload, and so does the
    // resume.
    await visit(page, "My providers", "My providers");
    const elsewhere = (action: string) =>
      fetch(`${base}/api/providers/${encodeURIComponent(ada.providerId)}/${action}`, {
        method: "POST",
        headers: { authorization: `Bearer ${adaKey}` },
      });
    expect((await elsewhere("pause")).status).to.equal(200);
    await page.locator(".badge", { hasText: "paused" }).waitFor({ timeout: 10_000 });
    expect((await elsewhere("resume")).status).to.equal(200);
    await page.locator(".badge", { hasText: "online" }).waitFor({ timeout: 10_000 });

    await visit(page, "Models", "Models");
    await page
      .getByRole("table", { name: "Models you can use" })
      .getByRole("rowheader", { name: "ada-secret-model", exact: true })
      .waitFor();
    await shoot(page, "ada-models");
    expect(problems).to.deep.equal([]);
  });

  it("shows a second member none of the first member's providers, tokens, models or usage", async () => {
    const adaToken = await new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: adaKey, maxRetries: 0 }).chat.completions.create({
      model: "ada-secret-model",
      messages: [{ role: "user", content: "private" }],
      max_tokens: 3,
    });
    expect(adaToken.choices).to.have.length(1);
    await new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: bobKey, maxRetries: 0 }).chat.completions.create({
      model: "bob-model",
      messages: [{ role: "user", content: "mine" }],
      max_tokens: 3,
    });

    const browser = await openBrowser();
    browsers.push(browser);
    const { page, problems } = browser;
    await page.goto(`${mesh.gateway.baseUrl}/`);
    await page.getByLabel("User name").fill("bob");
    await page.getByLabel("Password").fill("bob's password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Playground" }).waitFor();

    // What each page shows once its calls have answered: bob's own things, or his token list. Pages are opened by
    // their links, as a member moves, so that no call of the page before is cut short by a reload.
    const loaded: Record<(typeof PAGES)[number][0], Locator> = {
      playground: page.locator("option", { hasText: "bob-model" }),
      providers: page.getByText("bob-agent-1", { exact: true }),
      models: page.getByText("bob-model", { exact: true }),
      usage: page.getByText("bob-model", { exact: true }),
      "settings/tokens": page.getByRole("table", { name: "Your tokens" }),
    };
    for (const [path, link, heading] of PAGES) {
      await visit(page, link, heading);
      await loaded[path].first().waitFor({ state: "attached", timeout: 15_000 });
      const text = await page.locator("body").textContent();
      for (const secret of ["ada", "ada-agent-0", "ada-secret-model", "sdk-laptop"]) {
        expect(text, `${heading} shows nothing of ada's`).not.to.match(new RegExp(`\\b${secret}\\b`));
      }
      const options = await page.locator("option").allTextContents();
      expect(options.join(" "), `${heading}'s pickers offer nothing of ada's`).not.to.contain("ada-secret-model");
      await shoot(page, `bob-${path.replace("/", "-")}`);
    }
    expect(problems).to.deep.equal([]);
  });

  it("takes an invited member from the invite link to a token, then out and back in with their password", async () => {
    const { inviteToken } = await mesh.registry.store.createUser("perry", 24 * 3600_000);
    const browser = await openBrowser();
    browsers.push(browser);
    const { page, problems } = browser;
    page.on("dialog", (dialog) => void dialog.accept());

    await page.goto(`${mesh.gateway.baseUrl}/invite#token=${inviteToken}`);
    await page.getByRole("heading", { level: 1, name: "Set your password" }).waitFor();
    await shoot(page, "invite");
    await page.getByLabel("New password (8 characters or more)").fill("perry's password");
    await page.getByLabel("The same again").fill("perry's password");
    await page.getByRole("button", { name: "Set password and sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Tokens" }).waitFor();
    expect(new URL(page.url()).hash, "the token leaves the address bar").to.equal("");
    await page.getByLabel("Label for a new token").fill("laptop");
    await page.getByRole("button", { name: "Create token" }).click();
    const secret = (await page.locator("#new-token").filter({ hasText: /^im_/ }).textContent({ timeout: 15_000 })) as string;
    const models = await fetch(`${mesh.gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
    expect(models.status).to.equal(200);

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { level: 1, name: "Sign in" }).waitFor();
    await shoot(page, "sign-in");
    await page.getByLabel("User name").fill("perry");
    await page.getByLabel("Password").fill("perry's password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Playground" }).waitFor();
    await visit(page, "Settings → Tokens", "Tokens");
    await page.getByRole("button", { name: "Revoke laptop" }).click();
    await page.getByRole("cell", { name: "laptop", exact: true }).waitFor({ state: "detached" });
    const me = () => fetch(`${mesh.gateway.baseUrl}/api/me`, { headers: { authorization: `Bearer ${secret}` } });
    await waitFor("the revoked token refused", async () => (await me()).status === 401, 2_000);
    expect(problems).to.deep.equal([]);
  });

  it("works from the keyboard alone: sign in, reach the chat, send with Enter, move between tabs with the arrows", async () => {
    const browser = await openBrowser();
    browsers.push(browser);
    const { page, problems } = browser;
    await page.goto(`${mesh.gateway.baseUrl}/dashboard/sign-in`);
    await tabTo(page, page.getByLabel("User name"));
    await page.keyboard.type("bob");
    await page.keyboard.press("Tab");
    await page.keyboard.type("bob's password");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { level: 1, name: "Playground" }).waitFor();

    const message = page.getByLabel("Message");
    await message.waitFor();
    await tabTo(page, message);
    await page.keyboard.type("Hello from the keyboard");
    await page.keyboard.press("Enter");
    const conversation = page.getByRole("log", { name: "Conversation" });
    await conversation.getByText("Hello from the keyboard").waitFor();
    await waitFor(
      "the reply",
      async () =>
        (await page.getByRole("button", { name: "Stop" }).isDisabled()) && ((await conversation.textContent()) ?? "").includes("bob-model"),
      15_000,
    );

    await tabTo(page, page.getByRole("tab", { name: "Chat" }));
    await page.keyboard.press("ArrowRight");
    const transcription = page.getByRole("tab", { name: "Transcription" });
    await waitFor("Transcription selected", async () => (await transcription.getAttribute("aria-selected")) === "true", 5_000);
    expect(await focused(transcription), "focus follows the arrow").to.equal(true);
    expect(problems).to.deep.equal([]);
  });
});
