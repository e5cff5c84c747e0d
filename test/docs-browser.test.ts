import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { type BrowserContext, chromium } from "playwright-core";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

// The explorer at /docs as an integrator uses it: a real Chromium, Authorize with an API key, then Try it out on
// GET /v1/models against a real mesh. Needs Debian's `chromium`; CI installs it, so there a missing browser fails.

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

function chromiumInstalled(): boolean {
  return spawnSync("sh", ["-c", "command -v chromium"], { stdio: "ignore" }).status === 0;
}

describe("the /docs explorer in headless Chromium", function () {
  this.timeout(90_000);
  let mesh: Mesh | undefined;
  let context: BrowserContext | undefined;
  let profile: string | undefined;

  before(function () {
    if (chromiumInstalled()) return;
    const message = "chromium is not installed: apt-get install -y --no-install-recommends chromium";
    if (process.env.CI) throw new Error(message);
    console.warn(`skipping: ${message}`);
    this.skip();
  });

  afterEach(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await mesh?.stop();
  });

  it("authorizes with an API key and lists the mesh's models through Try it out", async () => {
    mesh = await startMesh();
    const key = await mesh.registry.keyFor("olive");
    await mesh.addAgent({ user: "olive", apiKey: key });
    profile = await mkdtemp(join(tmpdir(), "infermesh-chromium-"));
    // A persistent context is how Playwright takes a --user-data-dir: a fresh, empty profile for this test alone.
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    const page = context.pages()[0] ?? (await context.newPage());
    const sent: string[] = [];
    page.on("request", (request) => {
      if (request.url().endsWith("/v1/models")) sent.push(request.headers().authorization ?? "");
    });

    await page.goto(`${mesh.gateway.baseUrl}/docs`);
    await page.locator("button.btn.authorize").first().click();
    // The dialog offers each scheme in a form of its own: the API key's (bearerAuth) and the session cookie's.
    const dialog = page.locator(".modal-ux");
    const bearer = dialog.locator("form").filter({ hasText: "bearerAuth" });
    await bearer.locator("input").first().fill(key);
    await bearer.locator("button.authorize").click();
    await bearer.locator("button.btn-done").click();

    const operation = page.locator("#operations-models-listModels");
    await operation.locator(".opblock-summary").first().click();
    await operation.locator("button.try-out__btn").click();
    await operation.locator("button.execute").click();

    const body = operation.locator(".live-responses-table .response-col_description pre").first();
    await body.waitFor({ timeout: 30_000 });
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText, what a reader sees
    const text = await body.innerText();
    expect(JSON.parse(text)).to.have.nested.property("data[0].id", "sim-llama");
    const status = operation.locator(".live-responses-table tbody .response-col_status").first();
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText, what a reader sees
    expect(await status.innerText()).to.equal("200");
    expect(sent).to.deep.equal([`Bearer ${key}`]);
  });

  it("takes an invited member from the invite link to a working API key, and back in by signing in, with no console error", async () => {
    mesh = await startMesh();
    const { inviteToken } = await mesh.registry.store.createUser("perry", 24 * 3600_000);
    profile = await mkdtemp(join(tmpdir(), "infermesh-chromium-"));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    page.on("requestfailed", (request) => problems.push(`${request.url()}: ${request.failure()?.errorText}`));

    await page.goto(`${mesh.gateway.baseUrl}/invite#token=${inviteToken}`);
    await page.getByLabel("New password (8 characters or more)").fill("perry's password");
    await page.getByLabel("The same again").fill("perry's password");
    await page.getByRole("button", { name: "Set password and sign in" }).click();
    await page.getByText("Signed in as perry.").waitFor({ timeout: 15_000 });
    expect(new URL(page.url()).hash, "the token leaves the address bar").to.equal("");
    await page.getByLabel("A label for a new key").fill("laptop");
    await page.getByRole("button", { name: "Make a key" }).click();
    const output = page.locator("output#key");
    await output.filter({ hasText: /^im_/ }).waitFor({ timeout: 15_000 });
    const key = (await output.textContent()) as string;
    const models = await fetch(`${mesh.gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(models.status).to.equal(200);
    await page.getByRole("cell", { name: "laptop", exact: true }).waitFor();

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("Signed out.").waitFor();
    await page.reload();
    await page.getByLabel("User name").fill("perry");
    await page.getByLabel("Password", { exact: true }).fill("perry's password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Revoke key laptop" }).click();
    await page.getByRole("cell", { name: "laptop", exact: true }).waitFor({ state: "detached" });
    const me = () => fetch(`${mesh?.gateway.baseUrl}/api/me`, { headers: { authorization: `Bearer ${key}` } });
    await waitFor("the revoked key refused", async () => (await me()).status === 401, 2_000);
    expect(problems).to.deep.equal([]);
  });
});
