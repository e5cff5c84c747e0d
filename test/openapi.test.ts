import { Validator } from "@seriousme/openapi-schema-validator";
import { expect } from "chai";
import { createGateway, type Gateway } from "../services/gateway/gateway.js";
import { createLogger } from "../services/shared/logger.js";

// /openapi.json is written by @fastify/swagger from the routes' own schemas; these tests hold it to the OpenAPI 3.1
// schema and to the façade it must describe, route by route.

interface Operation {
  readonly requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
  readonly responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }>;
  readonly security?: unknown[];
}
type Paths = Record<string, Record<string, Operation>>;

const ERROR_CODES = ["4XX", "5XX"];

describe("GET /openapi.json", () => {
  let gateway: Gateway;
  let document: { openapi: string; paths: Paths; components: Record<string, Record<string, unknown>>; security: unknown[] };

  before(async () => {
    // No registry is needed to describe the API: the document comes from the routes alone.
    gateway = createGateway({
      registry: "http://127.0.0.1:1",
      meshToken: "t",
      log: createLogger("gateway", "silent"),
      listen: { host: "127.0.0.1", port: 0 },
      shutdownGraceMs: 100,
    });
    const response = await gateway.http.inject({ method: "GET", url: "/openapi.json" });
    expect(response.statusCode).to.equal(200);
    expect(response.headers["content-type"]).to.match(/^application\/json/);
    document = response.json();
  });
  after(() => gateway.close());

  it("is a valid OpenAPI 3.1 document", async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document));
    expect(result.errors, JSON.stringify(result.errors, null, 2)).to.equal(undefined);
    expect(result.valid).to.equal(true);
    expect(validator.version).to.equal("3.1");
    expect(document.openapi).to.equal("3.1.0");
  });

  it("lists every façade endpoint with its methods, and hides the tooling's own routes", () => {
    const methods = Object.fromEntries(Object.entries(document.paths).map(([path, item]) => [path, Object.keys(item).sort()]));
    expect(methods).to.deep.equal({
      "/v1/models": ["get"],
      "/v1/models/{model}": ["get"],
      "/v1/chat/completions": ["post"],
      "/v1/completions": ["post"],
      "/v1/embeddings": ["post"],
      "/v1/rerank": ["post"],
      "/v1/responses": ["post"],
      "/v1/messages": ["post"],
      "/v1/messages/count_tokens": ["post"],
      "/v1/audio/transcriptions": ["post"],
      "/v1/audio/translations": ["post"],
      "/v1/audio/speech": ["post"],
      "/v1/images/generations": ["post"],
      "/v1/images/edits": ["post"],
      "/api/inference/agent/heartbeat/": ["post"],
      "/api/inference/agent/register/": ["post"],
      "/api/auth/login": ["post"],
      "/api/auth/signup": ["post"],
      "/api/auth/invite": ["post"],
      "/api/auth/sign-in-link": ["post"],
      "/api/auth/session": ["get"],
      "/api/auth/options": ["get"],
      "/api/auth/logout": ["post"],
      "/api/me": ["get"],
      "/api/keys": ["get", "post"],
      "/api/keys/{id}": ["delete"],
      "/api/usage": ["get"],
      "/api/providers": ["get"],
      "/api/providers/{id}/pause": ["post"],
      "/api/providers/{id}/resume": ["post"],
      "/api/providers/{id}/sharing": ["put"],
      "/health": ["get"],
    });
    expect(document.paths["/metrics"], "metrics are the operator's, on --metrics-listen").to.equal(undefined);
  });

  it("requires a bearer API key everywhere but /health and sign-in; members' routes take the session cookie too, Anthropic's routes x-api-key", () => {
    expect(document.components.securitySchemes).to.deep.equal({
      bearerAuth: { type: "http", scheme: "bearer", description: "An infermesh API key." },
      apiKeyHeader: {
        type: "apiKey",
        in: "header",
        name: "x-api-key",
        description: "An infermesh API key, as Anthropic's clients send it; the Anthropic routes take it here or as a bearer token.",
      },
      sessionCookie: {
        type: "apiKey",
        in: "cookie",
        name: "infermesh_session",
        description: "The session POST /api/auth/login starts; writes need the X-CSRF-Token header it returned.",
      },
    });
    expect(document.security).to.deep.equal([{ bearerAuth: [] }]);
    expect(document.paths["/health"]?.get?.security).to.deep.equal([]);
    for (const path of ["/api/auth/login", "/api/auth/signup", "/api/auth/invite"]) {
      expect(document.paths[path]?.post?.security, path).to.deep.equal([]);
    }
    for (const path of ["/api/keys", "/api/usage", "/api/providers"]) {
      expect(document.paths[path]?.get?.security, path).to.deep.equal([{ bearerAuth: [] }, { sessionCookie: [] }]);
    }
    expect(document.paths["/v1/models"]?.get?.security).to.equal(undefined);
    for (const path of ["/v1/messages", "/v1/messages/count_tokens"]) {
      expect(document.paths[path]?.post?.security, path).to.deep.equal([{ apiKeyHeader: [] }, { bearerAuth: [] }]);
    }
    for (const path of ["/v1/embeddings", "/v1/rerank", "/v1/responses", "/v1/audio/translations", "/v1/models/{model}"]) {
      const item = document.paths[path] ?? {};
      expect(Object.values(item)[0]?.security, path).to.equal(undefined);
    }
  });

  it("describes each request body and answer by content type", () => {
    const requestTypes = (path: string) => Object.keys(document.paths[path]?.post?.requestBody?.content ?? {});
    const answerTypes = (path: string, method = "post") =>
      Object.keys(document.paths[path]?.[method]?.responses["200"]?.content ?? {}).sort();
    for (const path of [
      "/v1/chat/completions",
      "/v1/completions",
      "/v1/embeddings",
      "/v1/rerank",
      "/v1/responses",
      "/v1/messages",
      "/v1/messages/count_tokens",
      "/v1/images/generations",
      "/v1/audio/speech",
      "/api/inference/agent/heartbeat/",
    ]) {
      expect(requestTypes(path), path).to.deep.equal(["application/json"]);
    }
    expect(requestTypes("/v1/audio/transcriptions")).to.deep.equal(["multipart/form-data"]);
    expect(requestTypes("/v1/audio/translations")).to.deep.equal(["multipart/form-data"]);
    expect(requestTypes("/v1/images/edits")).to.deep.equal(["multipart/form-data"]);
    expect(answerTypes("/v1/models", "get")).to.deep.equal(["application/json"]);
    expect(answerTypes("/v1/chat/completions")).to.deep.equal(["application/json", "text/event-stream"]);
    expect(answerTypes("/v1/completions")).to.deep.equal(["application/json", "text/event-stream"]);
    expect(answerTypes("/v1/images/generations")).to.deep.equal(["application/json", "text/event-stream"]);
    expect(answerTypes("/v1/audio/transcriptions")).to.deep.equal(["application/json", "text/event-stream", "text/plain", "text/vtt"]);
    expect(answerTypes("/v1/audio/translations")).to.deep.equal(["application/json", "text/plain", "text/vtt"]);
    expect(answerTypes("/v1/models/{model}", "get")).to.deep.equal(["application/json"]);
    for (const path of ["/v1/embeddings", "/v1/rerank", "/v1/messages/count_tokens"]) {
      expect(answerTypes(path), path).to.deep.equal(["application/json"]);
    }
    for (const path of ["/v1/responses", "/v1/messages"]) {
      expect(answerTypes(path), path).to.deep.equal(["application/json", "text/event-stream"]);
    }
    for (const path of ["/api/auth/login", "/api/keys", "/api/providers/{id}/sharing"]) {
      const method = path === "/api/providers/{id}/sharing" ? "put" : "post";
      const body = document.paths[path]?.[method]?.requestBody?.content ?? {};
      expect(Object.keys(body), path).to.deep.equal(["application/json"]);
    }
    const speech = document.paths["/v1/audio/speech"]?.post?.responses["200"]?.content ?? {};
    for (const [type, media] of Object.entries(speech)) {
      if (type !== "text/event-stream") expect(media.schema, type).to.deep.equal({ type: "string", format: "binary" });
    }
    expect(Object.keys(speech)).to.include.members(["audio/mpeg", "audio/wav", "audio/flac", "text/event-stream"]);
  });

  it("documents the HTTP agent heartbeat without an address for the mesh to dial", () => {
    const body = document.paths["/api/inference/agent/heartbeat/"]?.post?.requestBody?.content["application/json"]?.schema as {
      properties: Record<string, unknown>;
    };
    expect(Object.keys(body.properties).sort()).to.deep.equal([
      "accepting_requests",
      "id",
      "load",
      "models",
      "name",
      "services",
      "sharing",
      "version",
    ]);
  });

  it("marks uploads as binary files in the multipart forms", () => {
    const form = (path: string) =>
      document.paths[path]?.post?.requestBody?.content["multipart/form-data"]?.schema as {
        properties: Record<string, Record<string, unknown>>;
        required: string[];
      };
    const transcription = form("/v1/audio/transcriptions");
    expect(transcription.properties.file).to.include({ type: "string", format: "binary" });
    expect(transcription.required).to.deep.equal(["file", "model"]);
    const edit = form("/v1/images/edits");
    expect(edit.properties.image).to.include({ type: "string", format: "binary" });
    expect(edit.properties.mask).to.include({ type: "string", format: "binary" });
    expect(edit.properties["image[]"]).to.deep.include({ type: "array", items: { type: "string", format: "binary" } });
  });

  it("gives every /v1 operation OpenAI's error envelope for 4XX and 5XX, and Anthropic's routes Anthropic's", () => {
    const anthropic = ["/v1/messages", "/v1/messages/count_tokens"];
    for (const path of anthropic) {
      for (const code of ERROR_CODES) {
        const schema = document.paths[path]?.post?.responses[code]?.content?.["application/json"]?.schema as {
          required: string[];
          properties: { type: unknown; error: { required: string[] } };
        };
        expect(schema?.required, `${path} ${code}`).to.deep.equal(["type", "error", "request_id"]);
        expect(schema.properties.type, "the envelope's type").to.deep.equal({ enum: ["error"] });
        expect(schema.properties.error.required).to.deep.equal(["type", "message"]);
      }
    }
    for (const [path, item] of Object.entries(document.paths)) {
      if (!path.startsWith("/v1/") || anthropic.includes(path)) continue;
      for (const operation of Object.values(item)) {
        for (const code of ERROR_CODES) {
          const schema = operation.responses[code]?.content?.["application/json"]?.schema as {
            required: string[];
            properties: { error: { required: string[] } };
          };
          expect(schema?.required, `${path} ${code}`).to.deep.equal(["error"]);
          expect(schema.properties.error.required).to.deep.equal(["message", "type", "param", "code"]);
        }
      }
    }
  });

  it("is served without an API key, and so is the explorer", async () => {
    const docs = await gateway.http.inject({ method: "GET", url: "/docs" });
    expect(docs.statusCode).to.equal(200);
    expect(docs.headers["content-type"]).to.match(/^text\/html/);
    expect(docs.body).to.contain("swagger-ui");
  });
});
