import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./wait-for.js";

/**
 * The tests' nginx is Debian's own binary run from a temp prefix directory, with the same mesh configuration that
 * deploy/nginx/infermesh.conf gives operators: nginxConfig() writes both, and test/nginx-config.test.ts holds the
 * file to it.
 */

/** NGINX_BINARY is where Debian's nginx package installs nginx. */
export const NGINX_BINARY = "/usr/sbin/nginx";

/**
 * skipWithoutNginx skips a suite on a machine without Debian's nginx, saying so; in CI, which installs it (.ci/run),
 * a missing nginx is a failure instead.
 */
export function skipWithoutNginx(context: Mocha.Context): void {
  if (existsSync(NGINX_BINARY)) return;
  const message = `${NGINX_BINARY} is missing (Debian package 'nginx')`;
  if (process.env.CI) throw new Error(message);
  console.warn(`      skipped: ${message}`);
  context.skip();
}
/** READY_TIMEOUT_MS is how long nginx may take to accept connections once started. */
const READY_TIMEOUT_MS = 15_000;
/** STOP_GRACE_MS is how long nginx may take to quit on SIGQUIT before it is killed. */
const STOP_GRACE_MS = 5_000;
/** START_ATTEMPTS bounds the retries when another process takes the free port between our probe and nginx's bind. */
const START_ATTEMPTS = 5;

/** NginxUpstreams are the gateways nginx balances across, as "host:port" of each gateway's HTTP port. */
export interface NginxUpstreams {
  readonly http: readonly string[];
  /** grpc are where agents' gRPC streams go; the same gateways as http unless given (a gateway serves both on one port). */
  readonly grpc?: readonly string[] | undefined;
}

/** NginxTls is the certificate chain and key nginx terminates TLS with. */
export interface NginxTls {
  readonly certFile: string;
  readonly keyFile: string;
}

/** NginxConfigOptions are what differs between one nginx in front of a mesh and another. */
export interface NginxConfigOptions {
  /** listen is nginx's listen directive's address: "443", "127.0.0.1:8443". */
  readonly listen: string;
  readonly serverName?: string | undefined;
  readonly upstreams: NginxUpstreams;
  /** tls, when set, terminates TLS and serves HTTP/2 (agents' gRPC streams need it); plaintext HTTP/1.1 otherwise. */
  readonly tls?: NginxTls | undefined;
}

/**
 * nginxConfig is nginx's configuration for a mesh: two upstreams of the same gateways and one server, to be included
 * in nginx.conf's http {} block (Debian's nginx includes /etc/nginx/conf.d/*.conf there). deploy/nginx/infermesh.conf
 * is its output for the options documented there.
 */
export function nginxConfig(options: NginxConfigOptions): string {
  const servers = (addresses: readonly string[]) =>
    addresses.map((address) => `    server ${address} max_fails=1 fail_timeout=1s;`).join("\n");
  const listen = options.tls ? `${options.listen} ssl http2` : options.listen;
  const tls = options.tls
    ? `
    ssl_certificate     ${options.tls.certFile};
    ssl_certificate_key ${options.tls.keyFile};
    ssl_protocols       TLSv1.2 TLSv1.3;
`
    : `
    # Without TLS nginx speaks HTTP/1.1 only: it serves HTTP/2 (agents' gRPC streams) beside HTTP/1.1 under TLS
    # alone, by ALPN; a plaintext "listen ... http2" would refuse every HTTP/1.1 client.
`;
  return `# infermesh behind nginx: nginx terminates TLS and spreads requests over the gateways, which speak plaintext.
#
# Include this file in nginx.conf's http {} block (Debian: copy it to /etc/nginx/conf.d/), set the certificate
# files, the server name and the gateways' addresses (each gateway's --listen), then point OpenAI clients at
# https://infermesh.example.com/v1 and agents' --mesh at https://infermesh.example.com.
#
# An nginx reload leaves agents' streams on the old workers until they end; set worker_shutdown_timeout (main
# context of nginx.conf, for example 30s) so that old workers close them and agents reconnect to the new ones.
#
# nginxConfig() in test/support/nginx-fixture.ts writes this file, and the tests run nginx with what it writes;
# test/nginx-config.test.ts fails when the two differ.

# The gateways' HTTP/1.1 side: the OpenAI-compatible API. Requests go round robin; a gateway that fails a connection
# is left out for a second (max_fails, fail_timeout). A POST is never retried on another gateway once sent: nginx
# retries only requests that are safe to repeat (proxy_next_upstream's default).
upstream infermesh_gateways_http {
${servers(options.upstreams.http)}
    # Idle connections kept open to the gateways, so that a request skips the TCP handshake.
    keepalive 64;
}

# The same gateways' HTTP/2 side (h2c with prior knowledge, on the same port). A block of its own because nginx keeps
# idle upstream connections per upstream block and tells them apart by address only: a shared block could hand an
# HTTP/2 connection to an HTTP/1.1 request.
upstream infermesh_gateways_grpc {
${servers(options.upstreams.grpc ?? options.upstreams.http)}
    keepalive 64;
}

server {
    listen ${listen};${options.serverName === undefined ? "" : `\n    server_name ${options.serverName};`}
${tls}
    # An agent holds ONE long-lived bidirectional gRPC stream to a gateway for as long as it runs.
    location /infermesh.v1.AgentLinkService/ {
        grpc_pass grpc://infermesh_gateways_grpc;
        # The stream's body never ends: no size limit, and an hour between messages in either direction before
        # nginx gives up on it (heartbeats come far more often).
        client_max_body_size 0;
        client_body_timeout 1h;
        grpc_read_timeout 1h;
        grpc_send_timeout 1h;
        # TCP keepalive on the connection to the gateway, so that a gateway that vanished is noticed.
        grpc_socket_keepalive on;
    }

    location / {
        proxy_pass http://infermesh_gateways_http;
        # HTTP/1.1 without "Connection: close", so that connections to the gateways are kept alive.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        # Streamed answers (server-sent events) go out event by event, and uploads go on as they arrive.
        proxy_buffering off;
        proxy_request_buffering off;
        # Audio and image uploads; the gateway applies its own limits below this one.
        client_max_body_size 64m;
        # A long answer that is not streamed sends nothing until it is done.
        proxy_read_timeout 1h;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # When no gateway answers (all down, or the one holding the request died), clients get OpenAI's error
        # envelope, the only error body they read, rather than nginx's HTML page. Gateways' own errors pass untouched.
        error_page 502 503 = @no_gateway;
        error_page 504 = @gateway_timeout;
    }

    location @no_gateway {
        default_type application/json;
        return 502 '{"error":{"message":"No gateway answered the request; retry it.","type":"upstream_error","param":null,"code":"gateway_unavailable"}}';
    }

    location @gateway_timeout {
        default_type application/json;
        return 504 '{"error":{"message":"The gateway did not answer in time.","type":"upstream_error","param":null,"code":"gateway_timeout"}}';
    }
}
`;
}

/** NginxOptions are a test nginx's gateways and, optionally, the certificate it serves TLS with. */
export interface NginxOptions {
  readonly upstreams: NginxUpstreams;
  readonly tls?: NginxTls | undefined;
}

/** NginxProxy is a running test nginx on a loopback port. */
export interface NginxProxy {
  /** url is "https://127.0.0.1:PORT" with TLS, "http://127.0.0.1:PORT" without. */
  readonly url: string;
  readonly port: number;
  /** pid is nginx's master process (a new one after restart). */
  readonly pid: number;
  /** stop asks nginx to quit (SIGQUIT), kills it after 5 s, waits until it is gone and removes its directory. */
  stop(): Promise<void>;
  /**
   * kill sends a signal (SIGKILL when none is given) as an operator would: SIGKILL to nginx's master and its workers
   * at once (the proxy dying under its clients), any other to the master, whose workers follow (SIGTERM fast,
   * SIGQUIT graceful). It resolves once nginx has exited and its port refuses connections, for the signals that end
   * it.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * reload rewrites the configuration (with new gateways when given) and has nginx load it, as `nginx -s reload`
   * does: new workers take new connections, old ones drop theirs within a second. It resolves once the old workers
   * stopped accepting.
   */
  reload(upstreams?: NginxUpstreams): Promise<void>;
  /**
   * restart starts nginx again after kill(), with the same configuration on the same port, and resolves once it
   * accepts connections: clients and agents that knew its URL find it there again.
   */
  restart(): Promise<void>;
  /**
   * pause freezes nginx, master and workers (SIGSTOP to its process group), as a stalled machine would: its sockets
   * stay open, the kernel still queues new connections, and nothing is read or answered.
   */
  pause(): void;
  /** resume thaws a paused nginx (SIGCONT to its process group). */
  resume(): void;
}

/** NGINX_RUNS_ON are the signals after which nginx keeps running. */
const NGINX_RUNS_ON: readonly NodeJS.Signals[] = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"];

/**
 * startNginx runs nginx in the foreground (one master, one worker, in a process group of their own) on a free
 * loopback port, and waits until it accepts connections. A failed start throws with nginx's error log.
 */
export async function startNginx(options: NginxOptions): Promise<NginxProxy> {
  if (!existsSync(NGINX_BINARY)) throw new Error(`${NGINX_BINARY} is missing: install Debian's nginx package (apt-get install nginx)`);
  const dir = mkdtempSync(join(tmpdir(), "infermesh-nginx-"));
  const paths = { conf: join(dir, "nginx.conf"), mesh: join(dir, "infermesh.conf"), errorLog: join(dir, "error.log") };
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  writeFileSync(paths.conf, standaloneConfig(dir, paths.mesh));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let upstreams = options.upstreams;
    const writeConfig = () => writeFileSync(paths.mesh, nginxConfig({ listen: `127.0.0.1:${port}`, upstreams, tls: options.tls }));
    writeConfig();
    const started = await run(paths, port);
    if (started.kind === "port-taken" && attempt < START_ATTEMPTS) continue;
    if (started.kind !== "ready") {
      removeDir();
      process.removeListener("exit", removeDir);
      throw new Error(`nginx did not start: ${started.why}\n${started.log}`);
    }
    // The master and its exit change on restart; every signal goes to the one running now.
    let current = started;
    const running = () => current.child.exitCode === null && current.child.signalCode === null;
    const masterPid = () => current.child.pid as number;
    const signal = (name: NodeJS.Signals) => {
      // SIGKILL cannot be passed on by the master, so it goes to the whole group.
      if (running()) process.kill(name === "SIGKILL" ? -masterPid() : masterPid(), name);
    };
    // SIGSTOP and SIGCONT are not passed on by the master either: a worker left running would keep serving.
    const signalGroup = (name: NodeJS.Signals) => {
      if (running()) process.kill(-masterPid(), name);
    };
    // A worker killed with its master may still hold the listening socket for a moment after the master is gone.
    const ended = async () => {
      await current.exited;
      await waitFor(`nginx's workers to close 127.0.0.1:${port}`, async () => !(await canConnect(port)), READY_TIMEOUT_MS, 10);
    };
    const killOnExit = () => signal("SIGKILL");
    process.once("exit", killOnExit);
    return {
      url: `${options.tls ? "https" : "http"}://127.0.0.1:${port}`,
      port,
      get pid() {
        return masterPid();
      },
      async stop() {
        signal("SIGQUIT");
        // A paused nginx would only take the SIGQUIT once thawed.
        signalGroup("SIGCONT");
        const force = setTimeout(() => signal("SIGKILL"), STOP_GRACE_MS);
        await ended();
        clearTimeout(force);
        process.removeListener("exit", killOnExit);
        process.removeListener("exit", removeDir);
        removeDir();
      },
      async kill(name = "SIGKILL") {
        signal(name);
        if (!NGINX_RUNS_ON.includes(name)) await ended();
      },
      async restart() {
        if (running()) throw new Error(`nginx (pid ${masterPid()}) is still running: kill it before restarting it`);
        const again = await run(paths, port);
        if (again.kind !== "ready") throw new Error(`nginx did not start again on 127.0.0.1:${port}: ${again.why}\n${again.log}`);
        current = again;
      },
      pause() {
        signalGroup("SIGSTOP");
      },
      resume() {
        signalGroup("SIGCONT");
      },
      async reload(next) {
        if (next !== undefined) upstreams = next;
        writeConfig();
        // A configuration nginx refuses on reload leaves the old one running, with only a line in the log to show.
        checkConfig(paths);
        const before = logText(paths.errorLog).length;
        signal("SIGHUP");
        // The old worker logs this as it closes its listening socket; from then on only new workers accept.
        await waitFor(
          "nginx's old worker to stop accepting after a reload",
          () => /reconfiguring[\s\S]*gracefully shutting down/.test(logText(paths.errorLog).slice(before)),
          READY_TIMEOUT_MS,
          20,
        );
      },
    };
  }
}

type Started =
  | { readonly kind: "ready"; readonly child: ChildProcess; readonly exited: Promise<void> }
  | { readonly kind: "port-taken" | "failed"; readonly why: string; readonly log: string };

interface NginxPaths {
  readonly conf: string;
  readonly mesh: string;
  readonly errorLog: string;
}

/** run starts nginx and waits until its port accepts a connection, or it exits, or the deadline passes. */
async function run(paths: NginxPaths, port: number): Promise<Started> {
  // A process group of its own, so that SIGKILL reaches the workers too: they outlive a master killed alone.
  const child = spawn(NGINX_BINARY, nginxArguments(paths), { stdio: ["ignore", "ignore", "pipe"], detached: true });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const log = () => [stderr.trim(), logText(paths.errorLog).trim()].filter(Boolean).join("\n");
  try {
    await waitFor(
      `nginx to accept connections on 127.0.0.1:${port}`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited (${child.exitCode ?? child.signalCode})`);
        return (await canConnect(port)) || undefined;
      },
      READY_TIMEOUT_MS,
      20,
    );
    return { kind: "ready", child, exited };
  } catch (error) {
    if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), "SIGKILL");
    await exited;
    const text = log();
    return { kind: /Address already in use/.test(text) ? "port-taken" : "failed", why: (error as Error).message, log: text };
  }
}

/**
 * standaloneConfig is the nginx.conf of a test nginx: everything in its own directory (pid, logs, temp files), in
 * the foreground, one worker; the mesh's part is included as operators include deploy/nginx/infermesh.conf.
 */
function standaloneConfig(dir: string, meshConfig: string): string {
  // Run as root (as CI does), nginx would hand its workers to "nobody", who cannot enter the 0700 temp dir.
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  return `daemon off;
${user}worker_processes 1;
# Old workers drop the connections they still hold (agents' streams) this soon after a reload or stop.
worker_shutdown_timeout 1s;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} notice;

events {
    worker_connections 1024;
}

http {
    access_log ${join(dir, "access.log")};
    client_body_temp_path ${join(dir, "client_body")};
    proxy_temp_path ${join(dir, "proxy")};
    fastcgi_temp_path ${join(dir, "fastcgi")};
    uwsgi_temp_path ${join(dir, "uwsgi")};
    scgi_temp_path ${join(dir, "scgi")};

    include ${meshConfig};
}
`;
}

function nginxArguments(paths: NginxPaths, ...extra: string[]): string[] {
  const prefix = `${join(paths.conf, "..")}/`;
  return ["-p", prefix, "-c", paths.conf, "-e", paths.errorLog, ...extra];
}

/** checkConfig runs `nginx -t` on the configuration, throwing nginx's complaint. */
function checkConfig(paths: NginxPaths): void {
  try {
    execFileSync(NGINX_BINARY, nginxArguments(paths, "-t", "-q"), { stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`nginx refuses its configuration:\n${stderr}`);
  }
}

function logText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** freePort is a loopback port nothing listens on, as the kernel hands out for port 0. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
