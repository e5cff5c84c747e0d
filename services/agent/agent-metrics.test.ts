import { expect } from "chai";
import { perLabel } from "../shared/metric-children.js";
import { createAgentMetrics } from "./agent-metrics.js";

describe("agent metrics", () => {
  it("perLabel makes one child per label value and hands it out again", () => {
    const made: string[] = [];
    const child = perLabel((value) => {
      made.push(value);
      return { value };
    });
    const first = child("chat_completion");
    expect(child("chat_completion")).to.equal(first);
    expect(child("completion")).to.not.equal(first);
    expect(made).to.deep.equal(["chat_completion", "completion"]);
  });

  it("counts through bound children into the series a scrape shows", async () => {
    const metrics = createAgentMetrics({ inFlight: () => 0, queued: () => 0, upstreamsUp: () => 0, modelsAdvertised: () => 0 });
    const requests = perLabel((operation) => perLabel((outcome) => metrics.requests.labels(operation, outcome)));
    requests("chat_completion")("ok").inc();
    requests("chat_completion")("ok").inc();
    requests("chat_completion")("timeout").inc();
    const values = (await metrics.requests.get()).values.map(({ labels, value }) => ({ ...labels, value }));
    expect(values).to.deep.equal([
      { operation: "chat_completion", outcome: "ok", value: 2 },
      { operation: "chat_completion", outcome: "timeout", value: 1 },
    ]);
  });
});
