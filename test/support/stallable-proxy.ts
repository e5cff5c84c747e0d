import { type AddressInfo, connect, createServer, type Socket } from "node:net";

/** StallableProxy is a TCP proxy on loopback that can freeze as a SIGSTOPped process does. */
export interface StallableProxy {
  /** address is where the proxy listens, "127.0.0.1:port". */
  readonly address: string;
  /**
   * stall stops moving bytes either way, on open connections and on those accepted later, while every socket stays
   * open: the peers see a host that is there and answers nothing.
   */
  stall(): void;
  /** resume moves bytes again, those held back first. */
  resume(): void;
  close(): Promise<void>;
}

/** startStallableProxy forwards connections on a free loopback port to target, "host:port". */
export async function startStallableProxy(target: string): Promise<StallableProxy> {
  const [host = "127.0.0.1", port = "0"] = target.split(/:(?=\d+$)/);
  const sockets = new Set<Socket>();
  let stalled = false;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (stalled) socket.pause();
  };
  const server = createServer((client) => {
    const upstream = connect(Number(port), host);
    track(client);
    track(upstream);
    // Bytes are handed over by hand, not piped: a pipe resumes a paused socket when the other side drains.
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => client.write(chunk));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stall() {
      stalled = true;
      for (const socket of sockets) socket.pause();
    },
    resume() {
      stalled = false;
      for (const socket of sockets) socket.resume();
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
