import * as http2 from "node:http2";

/** AgentSessionOptions tune the HTTP/2 connections to agents. */
export interface AgentSessionOptions {
  /** keepaliveMs is how often a connection is pinged, so that a vanished agent is noticed even when it is idle. */
  readonly keepaliveMs: number;
  /** keepaliveTimeoutMs is how long a ping (or the connect) may go unanswered before the connection is dropped. */
  readonly keepaliveTimeoutMs: number;
  /** windowBytes is the HTTP/2 flow-control window, per stream and per connection. */
  readonly windowBytes: number;
  /** tls dials with TLS, trusting ca (Node's defaults when undefined). */
  readonly tls?: { readonly ca: readonly string[] | undefined } | undefined;
}

/**
 * STREAMS_PER_SESSION retires a connection well before HTTP/2 runs out of client stream ids (2^30 of them), which
 * a gateway at a few thousand requests a second would reach in a few days.
 */
const STREAMS_PER_SESSION = 1_000_000_000;

interface Session {
  readonly http2: http2.ClientHttp2Session;
  streams: number;
  /** heard marks that the agent sent something on one of the connection's streams. */
  readonly heard: () => void;
}

/**
 * AgentSessions keeps one HTTP/2 connection per agent endpoint, opened on first use and replaced when it closes,
 * fails or is told to go away (calls already on it run to their end). Each is pinged every keepaliveMs; one whose
 * ping or connect goes unanswered for keepaliveTimeoutMs is destroyed, which fails its calls: a frozen agent or a
 * dead machine does not hold answers until their deadlines.
 */
export class AgentSessions {
  readonly #options: AgentSessionOptions;
  readonly #sessions = new Map<string, Session>();
  /** #open holds every connection not yet closed, those retired from #sessions included, for close(). */
  readonly #open = new Set<http2.ClientHttp2Session>();

  constructor(options: AgentSessionOptions) {
    this.#options = options;
  }

  /** request opens a stream to endpoint; it throws when the connection cannot take one (it is then replaced). */
  request(endpoint: string, headers: http2.OutgoingHttpHeaders): http2.ClientHttp2Stream {
    let session = this.#sessions.get(endpoint);
    if (!session || session.http2.closed || session.http2.destroyed || session.streams >= STREAMS_PER_SESSION) {
      if (session) this.#retire(endpoint, session);
      session = this.#connect(endpoint);
    }
    session.streams++;
    const stream = session.http2.request(headers, { endStream: false });
    stream.on("data", session.heard);
    return stream;
  }

  /** forget closes the connection to an endpoint no longer in use, once its calls are over. */
  forget(endpoint: string): void {
    const session = this.#sessions.get(endpoint);
    if (session) this.#retire(endpoint, session);
  }

  /** close cuts every connection, retired ones included; calls on them fail. */
  close(): void {
    for (const connection of this.#open) connection.destroy();
    this.#open.clear();
    this.#sessions.clear();
  }

  #connect(endpoint: string): Session {
    const { keepaliveMs, keepaliveTimeoutMs, windowBytes, tls } = this.#options;
    const connection = http2.connect(`${tls ? "https" : "http"}://${endpoint}`, {
      ...(tls?.ca ? { ca: [...tls.ca] } : {}),
      settings: { initialWindowSize: windowBytes, enablePush: false },
      // Node refuses new streams past this much buffered memory; with thousands of streams on one connection that
      // would fail healthy calls, so, as grpc-js does, the limit is lifted and flow control bounds the memory.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    // Data flowing from the agent proves it alive as well as a ping does: under a burst of thousands of streams, the
    // ping's answer can queue behind megabytes of their data, at either end, for longer than the timeout.
    let heardAt = 0;
    const session: Session = { http2: connection, streams: 0, heard: () => (heardAt = Date.now()) };
    this.#sessions.set(endpoint, session);
    this.#open.add(connection);
    // A connection is not a reason for the process to stay up; servers and calls are.
    connection.unref();
    connection.once("connect", () => {
      if (!connection.destroyed) connection.setLocalWindowSize(windowBytes);
    });

    let pingSentAt = 0;
    const openedAt = Date.now();
    let lastTick = openedAt;
    // A closed connection is one that takes no new calls; the calls still on it need the pings as much as ever.
    const judge = (now: number) => {
      if (connection.destroyed) return;
      if (connection.connecting) {
        if (now - openedAt > keepaliveTimeoutMs) connection.destroy(new Error(`connect timed out after ${keepaliveTimeoutMs} ms`));
      } else if (pingSentAt !== 0 && now - pingSentAt > keepaliveTimeoutMs && now - heardAt > keepaliveTimeoutMs) {
        connection.destroy(new Error(`the agent answered no keepalive ping for ${keepaliveTimeoutMs} ms`));
      }
    };
    const watchdog = setInterval(() => {
      const now = Date.now();
      const stalled = now - lastTick > 2 * keepaliveMs;
      lastTick = now;
      if (connection.destroyed) return;
      if (stalled) {
        // This process was too busy to run timers: the agent may have answered long ago, unread. Start over.
        pingSentAt = 0;
        return;
      }
      if (connection.connecting || pingSentAt !== 0) {
        // Timers run before pending I/O: judge only after this loop turn has read what already arrived.
        setImmediate(judge, now);
        return;
      }
      pingSentAt = now;
      let sent = false;
      try {
        sent = connection.ping((error) => {
          if (!error) pingSentAt = 0;
        });
      } catch {
        // A connection torn down since the check above: its 'close' stops this watchdog.
      }
      if (!sent) pingSentAt = 0;
    }, keepaliveMs);
    watchdog.unref();

    const drop = () => {
      if (this.#sessions.get(endpoint) === session) this.#sessions.delete(endpoint);
    };
    connection.on("goaway", drop);
    // The error also reaches every stream on the connection, where the calls report it.
    connection.on("error", drop);
    connection.once("close", () => {
      clearInterval(watchdog);
      this.#open.delete(connection);
      drop();
    });
    return session;
  }

  #retire(endpoint: string, session: Session): void {
    if (this.#sessions.get(endpoint) === session) this.#sessions.delete(endpoint);
    if (!session.http2.closed) session.http2.close();
  }
}
