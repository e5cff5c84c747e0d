import { readFileSync } from "node:fs";
import { expect } from "chai";
import { type NginxConfigOptions, nginxConfig } from "./support/nginx-fixture.js";

/** DEPLOY_FILE is the nginx configuration README gives operators. */
const DEPLOY_FILE = new URL("../deploy/nginx/infermesh.conf", import.meta.url);

/** DEPLOYED are the options deploy/nginx/infermesh.conf is written for: TLS on 443 in front of two gateways. */
const DEPLOYED: NginxConfigOptions = {
  listen: "443",
  serverName: "infermesh.example.com",
  upstreams: { http: ["10.0.0.11:8080", "10.0.0.12:8080"] },
  tls: { certFile: "/etc/infermesh/tls/fullchain.pem", keyFile: "/etc/infermesh/tls/privkey.pem" },
};

describe("deploy/nginx/infermesh.conf", () => {
  it("is the configuration the tests' nginx runs, for the documented servers (regenerate with nginxConfig when it differs)", () => {
    expect(readFileSync(DEPLOY_FILE, "utf8")).to.equal(nginxConfig(DEPLOYED));
  });

  it("sends agents' streams to grpc_pass and everything else to proxy_pass, each gateway in both upstreams", () => {
    const config = nginxConfig(DEPLOYED);
    const directives = (block: string) =>
      (config.match(new RegExp(`${block} \\{([^}]*)\\}`))?.[1] ?? "")
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "" && !line.startsWith("#"));
    const servers = [
      "server 10.0.0.11:8080 max_fails=1 fail_timeout=1s;",
      "server 10.0.0.12:8080 max_fails=1 fail_timeout=1s;",
      "keepalive 64;",
    ];
    expect(directives("upstream infermesh_gateways_http")).to.deep.equal(servers);
    expect(directives("upstream infermesh_gateways_grpc")).to.deep.equal(servers);
    expect(directives("location /infermesh.v1.AgentLinkService/")).to.deep.equal([
      "grpc_pass grpc://infermesh_gateways_grpc;",
      "client_max_body_size 0;",
      "client_body_timeout 1h;",
      "grpc_read_timeout 1h;",
      "grpc_send_timeout 1h;",
      "grpc_socket_keepalive on;",
    ]);
    expect(directives("location /").slice(0, 5)).to.deep.equal([
      "proxy_pass http://infermesh_gateways_http;",
      "proxy_http_version 1.1;",
      'proxy_set_header Connection "";',
      "proxy_buffering off;",
      "proxy_request_buffering off;",
    ]);
    expect(config).to.include("    listen 443 ssl http2;\n    server_name infermesh.example.com;\n");
  });
});
