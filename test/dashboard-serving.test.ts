import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import Fastify from "fastify";
import { dashboardRoutes } from "../services/gateway/dashboard-routes.js";
import { startGateway } from "./support/gateway-fixture.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";

// How the gateway serves the dashboard built into dist/dashboard (npm test builds it first): one page for every
// dashboard path and the invite link, hashed assets cached for good, and nothing served that was not built.

describe("the gateway serving the dashboard", function () {
  this.timeout(30_000);
  let mesh: Mesh;

  before(async () => {
    mesh = await startMesh();
  });

  after(async () => {
    await mesh?.stop();
  });

  const get = (path: string) => fetch(`${mesh.gateway.baseUrl}${path}`, { redirect: "manual" });

  it("answers every dashboard path and the invite link with the built page, under a policy that loads nothing from elsewhere", async () => {
    const built = await readFile(join(process.cwd(), "dist", "dashboard", "index.html"), "utf8");
    for (const path of ["/dashboard/", "/dashboard/sign-in", "/dashboard/settings/tokens", "/dashboard/no/such/page", "/invite"]) {
      const answer = await get(path);
      expect(answer.status, path).to.equal(200);
      expect(await answer.text(), path).to.equal(built);
      expect(answer.headers.get("content-type")).to.equal("text/html; charset=utf-8");
      expect(answer.headers.get("cache-control")).to.equal("no-cache");
      expect(answer.headers.get("content-security-policy")).to.contain("default-src 'self'").and.contain("frame-ancestors 'none'");
      expect(answer.headers.get("referrer-policy")).to.equal("no-referrer");
    }
    expect(built, "no script or style from a CDN").not.to.match(/(src|href)="https?:/);
  });

  it("leads / and /dashboard to the dashboard", async () => {
    for (const path of ["/", "/dashboard"]) {
      const answer = await get(path);
      expect(answer.status, path).to.equal(302);
      expect(answer.headers.get("location"), path).to.equal("/dashboard/");
    }
  });

  it("serves the hashed assets the page names, cached for a year, and 404s in OpenAI's envelope for one it does not have", async () => {
    const assets = await readdir(join(process.cwd(), "dist", "dashboard", "assets"));
    const script = assets.find((name) => name.endsWith(".js"));
    expect(script, "a built script").to.be.a("string");
    const answer = await get(`/dashboard/assets/${script}`);
    expect(answer.status).to.equal(200);
    expect(answer.headers.get("content-type")).to.match(/^(text|application)\/javascript/);
    expect(answer.headers.get("cache-control")).to.equal("public, max-age=31536000, immutable");
    const missing = await get("/dashboard/assets/index-NOPE.js");
    expect(missing.status).to.equal(404);
    expect(((await missing.json()) as { error: { type: string } }).error.type).to.equal("invalid_request_error");
  });

  it("says the sign-up mode and where metrics are, signed out", async () => {
    const here = (await (await get("/api/auth/options")).json()) as Record<string, unknown>;
    expect(here).to.deep.equal({ signup: "invite", metrics_path: "/metrics" });
    const open = await startGateway(mesh.registry.address, { signup: "open", publicMetrics: false });
    try {
      const there = (await (await fetch(`${open.baseUrl}/api/auth/options`)).json()) as Record<string, unknown>;
      expect(there).to.deep.equal({ signup: "open", metrics_path: null });
    } finally {
      await open.stop();
    }
  });

  it("answers 503 with what to run when the dashboard was never built", async () => {
    const empty = await mkdtemp(join(tmpdir(), "infermesh-no-dashboard-"));
    const app = Fastify();
    try {
      await app.register(dashboardRoutes, { signup: "invite", metricsPath: undefined, assetsDir: empty });
      const answer = await app.inject({ method: "GET", url: "/dashboard/usage" });
      expect(answer.statusCode).to.equal(503);
      expect(answer.body).to.contain("npm run build");
    } finally {
      await app.close();
      await rm(empty, { recursive: true, force: true });
    }
  });
});
