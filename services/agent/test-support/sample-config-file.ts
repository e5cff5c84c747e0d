import { expect } from "chai";
import { Modality } from "../../../gen/infermesh/v1/capabilities_pb.js";
import { type AgentConfig, DEFAULT_MAX_QUEUE } from "../agent-config.js";

/**
 * SAMPLE_CONFIG_FILE is an agent's `--config` file using every kind of field: top-level settings, an upstream with
 * models to expose and hide, capability overrides, limits and its own API key.
 */
export const SAMPLE_CONFIG_FILE = JSON.stringify({
  registry: "10.0.0.1:7700",
  api_key: "from-file",
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
  expect(config.registry).to.equal("http://10.0.0.1:7700");
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
