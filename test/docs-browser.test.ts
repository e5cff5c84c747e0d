import { expect } from "chai";
import { type BrowserSession, openBrowser, skipWithoutChromium } from "./support/chromium.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";

// The explorer at /docs as an integrator uses it: a real Chromium, Authorize with an API key, then Try it out on
// GET /v1/models against a real mesh. Needs Debian's `chromium`; CI installs it, so there a missing browser fails.

describe("the /docs explorer in headless Chromium", function () {
  this.timeout(90_000);
  let mesh: Mesh | undefined;
  let browser: BrowserSession | undefined;

  before(function () {
    skipWithoutChromium(this);
  });

  afterEach(async () => {
    await browser?.close();
    await mesh?.stop();
  });

  it("authorizes with an API key and lists the mesh's models through Try it out", async () => {
    mesh = await startMesh();
    const key = await mesh.registry.keyFor("olive");
    await mesh.addAgent({ user: "olive", apiKey: key });
    browser = await openBrowser();
    const { page } = browser;
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
});
