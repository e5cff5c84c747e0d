import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import type net from "node:net";
import type tls from "node:tls";
import type { FastifyServerFactory } from "fastify";

/** HTTP2_PREFACE is how every HTTP/2 client opens a connection (RFC 9113 §3.4); no HTTP/1 request starts with it. */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** DEFAULT_SNIFF_TIMEOUT_MS is Node's default headersTimeout, for a server whose own is off (0). */
export const DEFAULT_SNIFF_TIMEOUT_MS = 60_000;

/** DEFAULT_HTTP2_CLOSE_GRACE_MS is how long a closing port lets HTTP/2 streams run on after its GOAWAY. */
export const DEFAULT_HTTP2_CLOSE_GRACE_MS = 1_000;

/** SharedPortOptions are what a port serving both HTTP/1.1 (Fastify) and HTTP/2 (our own stream handler) needs. */
export interface SharedPortOptions {
  /** tls makes the port speak TLS, and ALPN choose the protocol; without it the port is cleartext and sniffs. */
  readonly tls?: { readonly cert: Buffer | string; readonly key: Buffer | string };
  /** onStream handles every HTTP/2 stream: the agents' gRPC calls. It owns the stream, its errors included. */
  readonly onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;
  /** http2Options configure the HTTP/2 sessions: `settings` (initialWindowSize, …), maxSessionMemory, and so on. */
  readonly http2Options?: http2.ServerOptions;
  /**
   * http2ConnectionWindowBytes is each HTTP/2 connection's receive window; HTTP/2's 64 KiB by default. Settings set
   * only the window of each stream: many calls on one stream (an agent's link) need the connection's to match.
   */
  readonly http2ConnectionWindowBytes?: number;
  /**
   * sniffTimeoutMs is how long a connection may take to tell its protocol before it is closed: in cleartext, to send
   * the bytes that tell HTTP/2 from HTTP/1.1 (by default the HTTP server's headersTimeout, the time Node gives HTTP/1.1
   * headers, or DEFAULT_SNIFF_TIMEOUT_MS when that is off); under TLS, to finish its handshake (by default Node's handshakeTimeout, 120 s).
   */
  readonly sniffTimeoutMs?: number;
  /** http2CloseGraceMs is how long streams may run after the GOAWAY that closing sends, before their session is cut. */
  readonly http2CloseGraceMs?: number;
}

/** SharedPort is a Fastify serverFactory whose servers route each connection, and a handle on their HTTP/2 sessions. */
export interface SharedPort {
  /** serverFactory goes in Fastify's options; Fastify may call it more than once (one server per address). */
  readonly serverFactory: FastifyServerFactory;
  /** http2Sessions counts the open HTTP/2 sessions on every server the factory made. */
  http2Sessions(): number;
  /** closeHttp2Sessions sends GOAWAY on every session, and cuts those still open after the close grace. */
  closeHttp2Sessions(): void;
}

/** SharedPortServer is what the factory returns: an HTTP/1.1 server whose close methods cover HTTP/2 sessions too. */
interface SharedPortServer {
  closeHttp2Sessions(): void;
  destroyHttp2Sessions(): void;
  sessionCount(): number;
}

/**
 * createSharedPort builds the serverFactory for one public port that speaks HTTP/1.1 to Fastify and HTTP/2 to
 * onStream. In cleartext, each connection's first bytes decide: the HTTP/2 preface (prior knowledge, as gRPC clients
 * and proxies send it) goes to HTTP/2, anything else to Fastify. Under TLS, ALPN decides: "http/1.1" when the client
 * offers it, else "h2" when offered, and a client that offers neither is refused; no ALPN at all means HTTP/1.1.
 * An HTTP/1.1 connection pays the decision once; Node's own parser then reads the socket as it would without us.
 *
 * The servers keep Fastify's server contract: listen, close, address; closeIdleConnections also drops connections
 * that have not yet told their protocol, closeAllConnections also cuts HTTP/2 sessions, and Fastify's close calls
 * closeHttp2Sessions.
 */
export function createSharedPort(options: SharedPortOptions): SharedPort {
  const closeGraceMs = options.http2CloseGraceMs ?? DEFAULT_HTTP2_CLOSE_GRACE_MS;
  if (!(closeGraceMs >= 0)) throw new RangeError(`http2CloseGraceMs must be a duration in ms >= 0, got ${closeGraceMs}`);
  if (options.sniffTimeoutMs !== undefined && !(options.sniffTimeoutMs > 0)) {
    throw new RangeError(`sniffTimeoutMs must be a duration in ms > 0, got ${options.sniffTimeoutMs}`);
  }
  const made = new Set<SharedPortServer>();

  const serverFactory: FastifyServerFactory = (handler, fastifyOptions) => {
    const httpOptions = (fastifyOptions.http ?? {}) as http.ServerOptions;
    const server = options.tls
      ? https.createServer(
          {
            ...httpOptions,
            cert: options.tls.cert,
            key: options.tls.key,
            ALPNCallback: chooseProtocol,
            ...(options.sniffTimeoutMs !== undefined ? { handshakeTimeout: options.sniffTimeoutMs } : {}),
          },
          handler,
        )
      : http.createServer(httpOptions, handler);
    applyFastifyServerOptions(server, fastifyOptions);
    const shared = routeConnections(server, options, closeGraceMs);
    made.add(shared);
    server.once("close", () => made.delete(shared));
    // https.Server is an http.Server in all but its prototype chain, which Fastify does not look at.
    return server as http.Server;
  };

  return {
    serverFactory,
    http2Sessions: () => [...made].reduce((sum, shared) => sum + shared.sessionCount(), 0),
    closeHttp2Sessions: () => {
      for (const shared of made) shared.closeHttp2Sessions();
    },
  };
}

/** chooseProtocol is the TLS server's ALPN choice: HTTP/1.1 whenever the client can speak it, since Fastify does. */
function chooseProtocol({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes("http/1.1")) return "http/1.1";
  if (protocols.includes("h2")) return "h2";
  return undefined;
}

/**
 * applyFastifyServerOptions sets what Fastify sets on the servers it makes itself and leaves to a serverFactory:
 * keepAliveTimeout, requestTimeout, connectionTimeout and maxRequestsPerSocket, already given defaults by Fastify.
 */
function applyFastifyServerOptions(server: http.Server | https.Server, fastifyOptions: Record<string, unknown>): void {
  const { keepAliveTimeout, requestTimeout, connectionTimeout, maxRequestsPerSocket } = fastifyOptions;
  if (typeof keepAliveTimeout === "number") server.keepAliveTimeout = keepAliveTimeout;
  if (typeof requestTimeout === "number") server.requestTimeout = requestTimeout;
  if (typeof connectionTimeout === "number") server.setTimeout(connectionTimeout);
  if (typeof maxRequestsPerSocket === "number" && maxRequestsPerSocket > 0) server.maxRequestsPerSocket = maxRequestsPerSocket;
}

/** SessionEntry is an open HTTP/2 session, with the timer that cuts it once its close grace is over. */
interface SessionEntry {
  cut: NodeJS.Timeout | undefined;
}

/**
 * routeConnections takes over the server's connection listener (cleartext) or secure-connection listener (TLS), and
 * hands each socket either to that listener, Node's HTTP/1.1 one, or to an HTTP/2 server that never listens itself.
 */
function routeConnections(server: http.Server | https.Server, options: SharedPortOptions, closeGraceMs: number): SharedPortServer {
  const h2 = http2.createServer(options.http2Options ?? {});
  h2.on("stream", options.onStream);
  const sessions = new Map<http2.ServerHttp2Session, SessionEntry>();
  const undecided = new Set<net.Socket>();
  let closing = false;

  const closeSession = (session: http2.ServerHttp2Session, entry: SessionEntry) => {
    if (entry.cut !== undefined) return;
    session.close();
    entry.cut = setTimeout(() => session.destroy(), closeGraceMs);
    entry.cut.unref();
  };
  h2.on("session", (session: http2.ServerHttp2Session) => {
    if (options.http2ConnectionWindowBytes !== undefined) session.setLocalWindowSize(options.http2ConnectionWindowBytes);
    const entry: SessionEntry = { cut: undefined };
    sessions.set(session, entry);
    session.once("close", () => {
      clearTimeout(entry.cut);
      sessions.delete(session);
    });
    // A connection that told its protocol after the port began closing gets its GOAWAY too.
    if (closing) closeSession(session, entry);
  });

  const event = options.tls ? "secureConnection" : "connection";
  const http1Listeners = server.listeners(event);
  server.removeAllListeners(event);
  const toHttp1 = (socket: net.Socket) => {
    for (const listener of http1Listeners) Reflect.apply(listener, server, [socket]);
  };
  const toHttp2 = (socket: net.Socket) => {
    // The HTTP server accepts sockets half-open, as HTTP/1.1 needs; an HTTP/2 peer that ends its side is gone, and its
    // session must learn so at once, not at the next keepalive.
    socket.on("end", () => socket.destroy());
    h2.emit("connection", socket);
  };

  if (options.tls) {
    // Until its handshake is done a connection is the TLS server's alone; tracked here, closing can drop it too.
    server.on("connection", (raw: net.Socket) => {
      undecided.add(raw);
      raw.once("close", () => undecided.delete(raw));
    });
    server.on(event, (socket: tls.TLSSocket) => {
      // _parent is the TCP socket the TLS socket wraps: Node sets it on every server-side TLS socket.
      const raw = (socket as { _parent?: net.Socket })._parent;
      if (raw !== undefined) undecided.delete(raw);
      if (socket.alpnProtocol === "h2") toHttp2(socket);
      else toHttp1(socket);
    });
  } else {
    server.on(event, (socket: net.Socket) =>
      sniff(socket, options.sniffTimeoutMs ?? (server.headersTimeout || DEFAULT_SNIFF_TIMEOUT_MS), undecided, (isHttp2) =>
        isHttp2 ? toHttp2(socket) : toHttp1(socket),
      ),
    );
  }

  const closeIdleConnections = server.closeIdleConnections.bind(server);
  const closeAllConnections = server.closeAllConnections.bind(server);
  const dropUndecided = () => {
    for (const socket of undecided) socket.destroy();
  };
  const shared: SharedPortServer = {
    closeHttp2Sessions() {
      closing = true;
      for (const [session, entry] of sessions) closeSession(session, entry);
    },
    destroyHttp2Sessions() {
      for (const session of sessions.keys()) session.destroy();
    },
    sessionCount: () => sessions.size,
  };
  // Own properties, so that Node's server.close() (which calls closeIdleConnections) and Fastify see them.
  Object.assign(server, {
    closeIdleConnections() {
      closeIdleConnections();
      dropUndecided();
    },
    closeAllConnections() {
      closeAllConnections();
      dropUndecided();
      shared.destroyHttp2Sessions();
    },
    closeHttp2Sessions: shared.closeHttp2Sessions,
  });
  return shared;
}

/**
 * sniff reads a cleartext connection until its bytes either diverge from the HTTP/2 preface or match all of it, puts
 * them back in the socket's read buffer, and calls decide. Both Node parsers read that buffer before the native
 * handle they consume: HTTP/1.1 through the 'data' listener it adds once the socket resumes, HTTP/2 on the session's
 * first tick. A connection that stays silent, or ends, before it tells is closed.
 */
function sniff(socket: net.Socket, timeoutMs: number, undecided: Set<net.Socket>, decide: (isHttp2: boolean) => void): void {
  undecided.add(socket);
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const length = Math.min(seen.length, HTTP2_PREFACE.length);
    const isHttp2 = HTTP2_PREFACE.compare(seen, 0, length, 0, length) === 0;
    if (isHttp2 && length < HTTP2_PREFACE.length) return;
    stop();
    // Paused first: a flowing stream would emit the unshifted bytes at once, before the next parser listens.
    socket.pause();
    socket.unshift(seen);
    decide(isHttp2);
    // The HTTP/2 session reads the buffer itself; the HTTP/1.1 parser gets it as 'data' once the socket flows.
    if (!isHttp2) socket.resume();
  };
  const onEnd = () => socket.destroy();
  const onError = () => socket.destroy();
  const onClose = () => stop();
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  timer.unref();
  const stop = () => {
    clearTimeout(timer);
    undecided.delete(socket);
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.off("error", onError);
    socket.off("close", onClose);
  };
  socket.on("data", onData);
  socket.on("end", onEnd);
  socket.on("error", onError);
  socket.on("close", onClose);
}
