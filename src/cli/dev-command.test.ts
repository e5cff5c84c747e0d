import { expect } from "chai";
import { agentJoinHint } from "./dev-command.js";

describe("infermesh dev's hint for more agents", () => {
  it("dials the gateway's public port with the key as dev's key file, never as itself, quoting a path the shell would split", () => {
    expect(agentJoinHint(8080, "/home/ann/infermesh/data/dev-api-key")).to.equal(
      "infermesh agent --mesh http://127.0.0.1:8080 --api-key-file /home/ann/infermesh/data/dev-api-key --upstream llm=URL",
    );
    expect(agentJoinHint(8080, "/home/ann/my data/it's/dev-api-key")).to.contain(
      `--api-key-file '/home/ann/my data/it'\\''s/dev-api-key' `,
    );
  });
});
