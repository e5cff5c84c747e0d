import { expect } from "chai";
import { Modality } from "../../../gen/infermesh/v1/capabilities_pb.js";
import { type AgentConfig, DEFAULT_MAX_QUEUE } from "../agent-config.js";

/**
 * SAMPLE_CONFIG_FILE is an agent's `--config` file using every kind of field: top-level settings (the mesh's URL as
 * OpenAI clients use it, and a private CA to trust for it), an upstream with models to expose and hide, capability
 * overrides, limits and its own API key.
 */
export const SAMPLE_CONFIG_FILE = JSON.stringify({
  mesh: "https://mesh.example.org/v1/",
  api_key: "from-file",
  ca_file: "/etc/infermesh/ca.pem",
  name: "gpu box",
  max_concurrency: 8,
  upstreams: [
    {
      type: "llm",
      url: "http://127.0.0.1:8080",
      engine: "llamacpp",
      models: { expose: ["qwen3"], hide: ["draft"] },
      capabilities: { qwen3: { input_modalities: ["text", "image"], supported_features: ["tools", "vision"], context_length: 32768 } },
      max_queue: 2,
      api_key: "upstream-secret",
    },
  ],
});

/**
 * expectSampleConfig checks a config read from SAMPLE_CONFIG_FILE, with apiKey given on top of it and an image
 * upstream at http://127.0.0.1:7860 added: the file's fields, its upstream's limits, lists and capabilities, and the
 * file's limits reaching the added upstream.
 */
export function expectSampleConfig(config: AgentConfig, apiKey: string): void {
  expect(config.apiKey).to.equal(apiKey);
  expect(config.mesh, "the mesh's base URL, its /v1 dropped").to.equal("https://mesh.example.org");
  expect(config.caFile).to.equal("/etc/infermesh/ca.pem");
  expect(config.name).to.equal("gpu box");
  const [llm, image] = config.upstreams;
  expect(llm).to.deep.include({ engine: "llamacpp", maxConcurrency: 8, maxQueue: 2, apiKey: "upstream-secret", hide: ["draft"] });
  expect(llm?.expose).to.deep.equal(["qwen3"]);
  expect(llm?.capabilities["qwen3"]).to.deep.equal({
    inputModalities: [Modality.TEXT, Modality.IMAGE],
    supportedFeatures: ["tools", "vision"],
    contextLength: 32768,
  });
  expect(image).to.deep.include({ type: "image", url: "http://127.0.0.1:7860", maxConcurrency: 8, maxQueue: DEFAULT_MAX_QUEUE });
}
