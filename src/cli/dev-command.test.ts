import { expect } from "chai";
import { agentJoinHint } from "./dev-command.js";

describe("infermesh dev's hint for more agents", () => {
  it("passes the key as dev's key file, never as itself, quoting a path the shell would split", () => {
    expect(agentJoinHint(7700, "/home/ann/infermesh/data/dev-api-key")).to.equal(
      "infermesh agent --registry http://127.0.0.1:7700 --api-key-file /home/ann/infermesh/data/dev-api-key --listen 127.0.0.1:0 --upstream llm=URL",
    );
    expect(agentJoinHint(7700, "/home/ann/my data/it's/dev-api-key")).to.contain(
      `--api-key-file '/home/ann/my data/it'\\''s/dev-api-key' `,
    );
  });
});
