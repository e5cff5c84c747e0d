import { expect } from "chai";
import { agentJoinHint, dashboardLine } from "./dev-command.js";

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

describe("infermesh dev's dashboard line", () => {
  it("is the dev user's one-time sign-in link, its token in the fragment, and the command line that makes another", () => {
    const token = "T".repeat(43);
    expect(dashboardLine(8080, token, "data/infermesh.db")).to.equal(
      `dashboard: http://127.0.0.1:8080/dashboard/sign-in#token=${token} (one-time sign-in link for user dev, valid 24 h; ` +
        "another: infermesh users sign-in-link dev --url http://127.0.0.1:8080 --db data/infermesh.db)",
    );
    expect(dashboardLine(9000, token, "/home/ann/my data/infermesh.db")).to.match(
      /^dashboard: http:\/\/127\.0\.0\.1:9000\/dashboard\/sign-in#token=T{43} .* --url http:\/\/127\.0\.0\.1:9000 --db '\/home\/ann\/my data\/infermesh\.db'\)$/,
    );
  });
});
