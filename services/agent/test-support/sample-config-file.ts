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
