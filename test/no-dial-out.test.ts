import { createServer, type Server } from "node:net";
import { expect } from "chai";
import { ServiceType } from "../gen/infermesh/v1/capabilities_pb.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { openRawLink } from "./support/raw-link.js";
import { bearer, stockClient, unary } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

/**
 * The gateway dials no address a user chose: a user can name one in an HTTP heartbeat, a gRPC heartbeat to the
 * registry, or the heartbeat on an agent's link, and none of them leads the gateway to connect anywhere. A trap port
 * counts every connection it gets.
 */
describe("the gateway dials no address a user chose", function () {
  this.timeout(30_000);
  let mesh: Mesh;
  let key: string;
  let trap: Server;
  let trapAddress: string;
  let dialled = 0;

  before(async () => {
    mesh = await startMesh();
    key = await mesh.registry.keyFor("eve");
    trap = createServer((socket) => {
      dialled++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
    trapAddress = `127.0.0.1:${(trap.address() as { port: number }).port}`;
  });

  after(async () => {
    await mesh.stop();
    await new Promise((resolve) => trap.close(resolve));
  });

  const chat = (model: string) =>
    fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
    });

  it("refuses an endpoint in inference.club's HTTP heartbeat", async () => {
    const response = await fetch(`${mesh.gateway.baseUrl}/api/inference/agent/register/`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "http-box", endpoint: trapAddress, models: [{ id: "via-http", type: "llm" }] }),
    });
    expect(response.status).to.equal(400);
    const body = (await response.json()) as { error: { param: string } };
    expect(body.error.param).to.equal("endpoint");
    expect((await chat("via-http")).status).to.equal(404);
  });

  it("refuses an endpoint in a user's own heartbeat to the registry", async () => {
    const client = stockClient("RegistryService", mesh.registry.address);
    try {
      const heartbeat = { providerId: "grpc-box", endpoint: trapAddress, models: [{ id: "via-grpc", serviceType: "SERVICE_TYPE_LLM" }] };
      const error = await unary(client, "heartbeat", heartbeat, bearer(key)).then(
        () => undefined,
        (failure: { code: number; details: string }) => failure,
      );
      expect(error?.code).to.equal(3);
      expect(error?.details).to.match(/set by the gateway/);
      const forged = { providerId: "grpc-box", gatewayId: "some-gateway", linkId: "x", models: heartbeat.models };
      const forgedError = await unary(client, "heartbeat", forged, bearer(key)).then(
        () => undefined,
        (failure: { code: number }) => failure,
      );
      expect(forgedError?.code).to.equal(3);
    } finally {
      client.close();
    }
    expect((await chat("via-grpc")).status).to.equal(404);
  });

  it("ignores an endpoint an agent names on its link: its calls go down the link", async () => {
    const link = openRawLink(mesh.gateway.baseUrl, key);
    link.send({
      case: "heartbeat",
      value: {
        name: "link-box",
        endpoint: trapAddress,
        gatewayId: "elsewhere",
        models: [{ id: "via-link", serviceType: ServiceType.LLM }],
      },
    });
    await waitFor("the link's provider routable", () => [...mesh.gateway.gateway.table.providers()].some((p) => p.name === "link-box"));
    const provider = [...mesh.gateway.gateway.table.providers()].find((p) => p.name === "link-box");
    expect(provider?.gatewayId).to.equal(mesh.gateway.gateway.settings.gatewayId);
    expect(provider?.endpoint).to.not.equal(trapAddress);
    const pending = chat("via-link");
    await waitFor("the call on the link", () => link.frames.some((frame) => frame.case === "call"));
    link.destroy();
    expect((await pending).status).to.be.oneOf([502, 503]);
  });

  it("never connected to the trap", () => {
    expect(dialled).to.equal(0);
  });
});
