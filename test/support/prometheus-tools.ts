import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";

/** missingTools names the Prometheus tools (Debian package `prometheus`) that are not on PATH. */
export function missingTools(...tools: readonly string[]): string[] {
  return tools.filter((tool) => spawnSync(tool, ["--version"], { stdio: "ignore" }).error !== undefined);
}

/** PromtoolResult is how `promtool check ...` judged its input: exit code and everything it printed. */
export interface PromtoolResult {
  readonly code: number | null;
  readonly output: string;
}

/** promtoolCheckMetrics runs `promtool check metrics` on an exposition, as Prometheus' own lint does. */
export function promtoolCheckMetrics(exposition: string): Promise<PromtoolResult> {
  return promtool(["check", "metrics"], exposition);
}

/** promtoolCheckConfig runs `promtool check config` on a configuration file. */
export function promtoolCheckConfig(path: string): Promise<PromtoolResult> {
  return promtool(["check", "config", path], "");
}

function promtool(args: readonly string[], input: string): Promise<PromtoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("promtool", args, { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}

/** freeLoopbackPort asks the kernel for a free port on 127.0.0.1, for a program that cannot bind port 0 and tell. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** PromSample is one series of an instant query's answer. */
export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** queryPrometheus runs an instant PromQL query through Prometheus' HTTP API. */
export async function queryPrometheus(baseUrl: string, query: string): Promise<PromSample[]> {
  const response = await fetch(`${baseUrl}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await response.json()) as { status: string; data?: { resultType: string; result: PromSample[] }; error?: string };
  if (body.status !== "success" || !body.data) throw new Error(`query '${query}' failed: ${body.error ?? response.status}`);
  return body.data.result;
}
