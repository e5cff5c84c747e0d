import { expect } from "chai";
import { Agent, request } from "undici";
import type { Simulator } from "../simulator.js";
import { createSimulator } from "../simulator.js";
import type { SimulatorOptions } from "../simulator-options.js";

/** Reply is a raw HTTP answer from a simulator: status, headers as undici gives them, and the body as text. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
}

/** SimulatorHarness starts simulators on port 0 for one test suite and calls them over one keep-alive agent. */
export interface SimulatorHarness {
  /** agent is the dispatcher every call goes through, for tests that drive undici's `request` themselves. */
  readonly agent: Agent;
  /** start listens a simulator built from the suite's defaults overridden by `options`. */
  start(options?: SimulatorOptions): Promise<{ sim: Simulator; url: string }>;
  /**
   * call GETs `path` when there is no body, else POSTs it: a string or Buffer as it is, anything else as JSON, with a
   * JSON content type that `headers` may override.
   */
  call(url: string, path: string, body?: unknown, headers?: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<Reply>;
  /** closeStarted closes every simulator started since it last ran and checks each drained; for `afterEach`. */
  closeStarted(): Promise<void>;
  /** close closes the agent; for `after`. */
  close(): Promise<void>;
}

/** createSimulatorHarness makes a harness whose simulators all start from `defaults`. */
export function createSimulatorHarness(defaults: SimulatorOptions): SimulatorHarness {
  const agent = new Agent();
  const started: Simulator[] = [];
  return {
    agent,
    async start(options = {}) {
      const sim = createSimulator({ ...defaults, ...options });
      started.push(sim);
      const { url } = await sim.listen();
      return { sim, url };
    },
    async call(url, path, body, headers = {}, signal) {
      const res = await request(`${url}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
        dispatcher: agent,
        ...(body === undefined ? {} : { body: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
        ...(signal === undefined ? {} : { signal }),
      });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    },
    async closeStarted() {
      for (const sim of started.splice(0)) {
        await sim.close();
        expect(sim.openConnections, "connections drained").to.equal(0);
        expect(sim.activeGenerations, "answers stopped").to.equal(0);
      }
    },
    async close() {
      await agent.close();
    },
  };
}
