import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));
// `npm run dashboard` serves the sources with hot reload and sends the API to a running gateway (`npm start`'s by default).
const gateway = process.env.INFERMESH_GATEWAY ?? "http://127.0.0.1:8080";

// The dashboard is built into dist/dashboard, which the gateway serves at /dashboard/ (services/gateway/dashboard-routes.ts).
export default defineConfig({
  root,
  base: "/dashboard/",
  publicDir: false,
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  server: { proxy: { "/api": gateway, "/v1": gateway, "/docs": gateway, "/openapi.json": gateway, "/metrics": gateway } },
  build: {
    outDir: fileURLToPath(new URL("../dist/dashboard", import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    // The whole dashboard is a few hundred kB; one chunk per page would only add round trips on a LAN.
    chunkSizeWarningLimit: 1024,
  },
});
