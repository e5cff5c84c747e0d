import { readFile } from "node:fs/promises";
import { join } from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply } from "fastify";
import { packageRoot } from "../shared/package-root.js";
import { AUTH_OPTIONS_SCHEMA } from "./api-schemas.js";
import { DASHBOARD_PATH, INVITE_PATH } from "./dashboard-paths.js";
import type { SignupMode } from "./gateway-options.js";

/** DashboardRoutesOptions are what the dashboard's routes work with. */
export interface DashboardRoutesOptions {
  readonly signup: SignupMode;
  /** metricsPath is where this port serves /metrics, undefined when only the private metrics listener does. */
  readonly metricsPath: string | undefined;
  /** assetsDir is the built dashboard (Vite's output); dist/dashboard of this package by default. */
  readonly assetsDir?: string;
}

/**
 * The page's rules for the browser: scripts, styles and fetches from this origin only (nothing from a CDN: the
 * dashboard works offline and on a LAN), media the playground makes itself (blob: and data: URLs), and no framing.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' data: blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // index.html names the current build's hashed assets, so it is revalidated; the assets themselves never change.
  "cache-control": "no-cache",
};

/**
 * dashboardRoutes serve the members' dashboard (dashboard/, built by Vite into dist/dashboard) at /dashboard/: its
 * hashed assets with @fastify/static, and its one page for every dashboard path, which the page's router then reads.
 * The invite link's /invite is that page too, and / leads to it. The dashboard itself only calls the documented
 * /api/ and /v1/ routes.
 */
export async function dashboardRoutes(app: FastifyInstance, options: DashboardRoutesOptions): Promise<void> {
  const dir = options.assetsDir ?? join(packageRoot()?.dir ?? process.cwd(), "dist", "dashboard");
  const page = await readFile(join(dir, "index.html")).catch(() => undefined);
  if (page === undefined) {
    app.log.warn({ dir }, "the dashboard is not built (npm run build); its pages answer 503 until it is");
  } else {
    await app.register(fastifyStatic, {
      root: join(dir, "assets"),
      prefix: `${DASHBOARD_PATH}assets/`,
      index: false,
      immutable: true,
      maxAge: "365d",
      decorateReply: false,
    });
  }

  const sendPage = async (_request: unknown, reply: FastifyReply) =>
    page === undefined
      ? reply
          .code(503)
          .type("text/plain; charset=utf-8")
          .send("The dashboard is not built: run `npm run build`, then restart the gateway.\n")
      : reply.headers(PAGE_HEADERS).send(page);
  const hidden = { schema: { hide: true } };
  app.get(`${DASHBOARD_PATH}*`, hidden, sendPage);
  app.get(INVITE_PATH, hidden, sendPage);
  app.get("/dashboard", hidden, async (_request, reply) => reply.redirect(DASHBOARD_PATH));
  app.get("/", hidden, async (_request, reply) => reply.redirect(DASHBOARD_PATH));

  app.get("/api/auth/options", { schema: AUTH_OPTIONS_SCHEMA }, async () => ({
    signup: options.signup,
    metrics_path: options.metricsPath ?? null,
  }));
}
