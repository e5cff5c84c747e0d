import { expect } from "chai";
import { fakeFiles as files, refusalMessage as message } from "../../test/support/config-errors.js";
import { parseGatewayConfig } from "./gateway-command.js";
import { parseRegistryConfig } from "./registry-command.js";

const MESH = "mesh-token-0123456789abcdef";

describe("the mesh token registry and gateway share", () => {
  for (const [command, parse] of [
    ["registry", parseRegistryConfig],
    ["gateway", parseGatewayConfig],
  ] as const) {
    describe(command, () => {
      it("reads the token from --mesh-token-file or INFERMESH_MESH_TOKEN_FILE, trimmed, as well as from INFERMESH_MESH_TOKEN", () => {
        expect(parse(["--mesh-token-file", "t"], {}, files({ t: `${MESH}\n` })).meshToken).to.equal(MESH);
        expect(parse([], { INFERMESH_MESH_TOKEN_FILE: "t" }, files({ t: `\t${MESH} \n` })).meshToken).to.equal(MESH);
        expect(parse([], { INFERMESH_MESH_TOKEN: MESH }).meshToken).to.equal(MESH);
        expect(parse(["--mesh-token-file", "t"], { INFERMESH_MESH_TOKEN: "from-the-environment" }, files({ t: MESH })).meshToken).to.equal(
          MESH,
        );
      });

      it("refuses a missing, unreadable, empty or short token, naming where it came from", () => {
        expect(message(() => parse([], {}))).to.equal(
          "--mesh-token (or INFERMESH_MESH_TOKEN) is required; --mesh-token-file FILE (or INFERMESH_MESH_TOKEN_FILE) keeps it off the command line",
        );
        expect(message(() => parse(["--mesh-token-file", "nope"], {}, files({})))).to.equal(
          "--mesh-token-file cannot read 'nope': no such file",
        );
        expect(message(() => parse(["--mesh-token-file", "t"], {}, files({ t: "" })))).to.equal(
          "--mesh-token-file names an empty file, 't'",
        );
        expect(message(() => parse([], { INFERMESH_MESH_TOKEN_FILE: "t" }, files({ t: "short\n" })))).to.equal(
          "the mesh token from INFERMESH_MESH_TOKEN_FILE is 5 characters long; it must be at least 16",
        );
        expect(message(() => parse(["--mesh-token", "short"], {}))).to.equal(
          "the mesh token from --mesh-token is 5 characters long; it must be at least 16",
        );
        expect(message(() => parse(["--mesh-token", MESH, "--mesh-token-file", "t"], {}, files({ t: MESH })))).to.equal(
          "--mesh-token and --mesh-token-file are both given; give one of them",
        );
      });
    });
  }
});
