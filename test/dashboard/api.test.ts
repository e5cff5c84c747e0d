import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { ApiError, call, errorOf, messageOf, onSessionEnded, useCsrfToken } from "../../dashboard/src/api.js";

// How the dashboard reads the gateway's refusals, and what it shows for anything a call threw.

const FIXTURES = new URL("../fixtures/llama-server/", import.meta.url);

/** fields are an ApiError's fields, for one whole-shape comparison. */
function fields(error: ApiError): { name: string; status: number; message: string; code: string | undefined } {
  return { name: error.name, status: error.status, message: error.message, code: error.code };
}

const json = (body: unknown, status: number, statusText = "") =>
  new Response(JSON.stringify(body), { status, statusText, headers: { "content-type": "application/json" } });

describe("api", () => {
  describe("errorOf", () => {
    it("reads OpenAI's error envelope as the gateway writes it: message and code", async () => {
      const envelope = {
        error: { message: "Your session has ended: sign in again.", type: "authentication_error", param: null, code: "session_expired" },
      };
      const error = await errorOf(json(envelope, 401, "Unauthorized"));
      expect(error).to.be.instanceOf(ApiError).and.instanceOf(Error);
      expect(fields(error)).to.deep.equal({
        name: "ApiError",
        status: 401,
        message: "Your session has ended: sign in again.",
        code: "session_expired",
      });
    });

    it("keeps an envelope's message and drops a code that is not a string (llama-server's are numbers)", async () => {
      const body = readFileSync(new URL("err_404.body", FIXTURES));
      const error = await errorOf(new Response(body, { status: 404, headers: { "content-type": "application/json; charset=utf-8" } }));
      expect(fields(error)).to.deep.equal({ name: "ApiError", status: 404, message: "File Not Found", code: undefined });
    });

    it("says the status when the body is not JSON, such as a proxy's error page", async () => {
      const page = new Response("<html><body><h1>502 Bad Gateway</h1></body></html>", { status: 502, statusText: "Bad Gateway" });
      expect(fields(await errorOf(page))).to.deep.equal({
        name: "ApiError",
        status: 502,
        message: "The gateway answered HTTP 502 Bad Gateway.",
        code: undefined,
      });
    });

    it("says only the status when there is no status text either", async () => {
      expect((await errorOf(new Response("", { status: 503 }))).message).to.equal("The gateway answered HTTP 503.");
    });

    it("says the status for JSON that is no envelope, or an envelope with no message", async () => {
      for (const body of [null, "oops", [1, 2], {}, { error: "no" }, { error: { code: "x" } }, { error: { message: 42, code: "x" } }]) {
        const error = await errorOf(json(body, 500, "Internal Server Error"));
        expect(fields(error), JSON.stringify(body)).to.deep.equal({
          name: "ApiError",
          status: 500,
          message: "The gateway answered HTTP 500 Internal Server Error.",
          code: undefined,
        });
      }
    });

    it("says the status when the body cannot be read", async () => {
      const broken = new ReadableStream<Uint8Array<ArrayBuffer>>({
        pull(controller) {
          controller.error(new Error("connection reset"));
        },
      });
      expect((await errorOf(new Response(broken, { status: 500, statusText: "Internal Server Error" }))).message).to.equal(
        "The gateway answered HTTP 500 Internal Server Error.",
      );
    });
  });

  describe("messageOf", () => {
    it("shows an ApiError's own message", () => {
      expect(messageOf(new ApiError(429, "Too many requests: try again in 3 s.", "rate_limited"))).to.equal(
        "Too many requests: try again in 3 s.",
      );
    });

    it("says the gateway cannot be reached when fetch fails to connect", async () => {
      // A port that was just free: nothing listens there, so the connection is refused.
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const failure = await fetch(`http://127.0.0.1:${port}/api/auth/session`).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).to.be.instanceOf(TypeError);
      expect(messageOf(failure)).to.equal("The gateway cannot be reached; check the connection and try again.");
    });

    it("shows any other error's message, and anything else as text", () => {
      expect(messageOf(new Error("Something broke."))).to.equal("Something broke.");
      expect(messageOf("plain words")).to.equal("plain words");
      expect(messageOf(404)).to.equal("404");
      expect(messageOf(undefined)).to.equal("undefined");
    });
  });

  describe("call", () => {
    const realFetch = globalThis.fetch;
    let sent: { path: string; headers: Headers; credentials: RequestInit["credentials"] }[] = [];

    function answerWith(response: () => Response): void {
      sent = [];
      globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
        sent.push({ path: String(input), headers: new Headers(init?.headers), credentials: init?.credentials });
        return response();
      }) as typeof fetch;
    }

    afterEach(() => {
      globalThis.fetch = realFetch;
      useCsrfToken("");
      onSessionEnded(() => {});
    });

    it("sends the session's CSRF token with writes, not with reads, and the cookie with both", async () => {
      answerWith(() => new Response(null, { status: 204 }));
      useCsrfToken("csrf-123");
      await call("/api/keys", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      await call("/api/keys", { method: "GET" });
      await call("/api/keys");
      expect(sent.map(({ path, headers, credentials }) => ({ path, csrf: headers.get("x-csrf-token"), credentials }))).to.deep.equal([
        { path: "/api/keys", csrf: "csrf-123", credentials: "same-origin" },
        { path: "/api/keys", csrf: null, credentials: "same-origin" },
        { path: "/api/keys", csrf: null, credentials: "same-origin" },
      ]);
      expect(sent[0]?.headers.get("content-type")).to.equal("application/json");
    });

    it("throws the envelope's ApiError, and tells the app when the session is over", async () => {
      let ended = 0;
      onSessionEnded(() => ended++);
      answerWith(() =>
        json({ error: { message: "Your session has ended: sign in again.", type: "authentication_error", code: "session_expired" } }, 401),
      );
      const failure = await call("/api/keys").then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure instanceof ApiError && fields(failure)).to.deep.equal({
        name: "ApiError",
        status: 401,
        message: "Your session has ended: sign in again.",
        code: "session_expired",
      });
      expect(ended).to.equal(1);
    });

    it("does not end the session for another refusal", async () => {
      let ended = 0;
      onSessionEnded(() => ended++);
      answerWith(() => json({ error: { message: "Invalid API key.", type: "authentication_error", code: "invalid_api_key" } }, 401));
      const failure = await call("/api/keys").catch((error: unknown) => error);
      expect(failure instanceof ApiError && failure.code).to.equal("invalid_api_key");
      expect(ended).to.equal(0);
    });
  });
});
