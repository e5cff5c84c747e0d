import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { type Model, ModelSchema, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { type Provider, ProviderSchema } from "../../gen/infermesh/v1/registry_pb.js";
import { modelList } from "./model-list.js";
import type { Route } from "./routing-table.js";

function provider(name: string, ownerUserName: string, heartbeatSeconds = 1_700_000_000n): Provider {
  return create(ProviderSchema, {
    id: `${name}-id`,
    name,
    ownerUserId: `${ownerUserName}-id`,
    ownerUserName,
    lastHeartbeatTime: { seconds: heartbeatSeconds },
  });
}

function model(id: string, serviceType = ServiceType.LLM): Model {
  return create(ModelSchema, { id, serviceType });
}

const route = (served: Provider, id: string, serviceType = ServiceType.LLM): Route => ({ provider: served, model: model(id, serviceType) });

describe("modelList", () => {
  it("lists a model once per id and service type, with every provider serving it and its owner in served_by", () => {
    const alicesBox = provider("box", "alice");
    const bobsBox = provider("box", "bob");
    const bobsGpu = provider("gpu", "bob");
    const entries = modelList([
      route(bobsGpu, "llama"),
      route(bobsBox, "LLAMA"),
      route(alicesBox, "llama"),
      route(alicesBox, "llama"),
      route(bobsGpu, "voice", ServiceType.TTS),
    ]);
    expect(entries).to.deep.equal([
      {
        id: "llama",
        object: "model",
        created: 1_700_000_000,
        owned_by: "box,gpu",
        served_by: [
          { provider: "box", owner: "alice" },
          { provider: "box", owner: "bob" },
          { provider: "gpu", owner: "bob" },
        ],
        service_type: "llm",
        input_modalities: ["text"],
        output_modalities: ["text"],
        supported_features: [],
        context_length: null,
      },
      {
        id: "voice",
        object: "model",
        created: 1_700_000_000,
        owned_by: "gpu",
        served_by: [{ provider: "gpu", owner: "bob" }],
        service_type: "tts",
        input_modalities: ["text"],
        output_modalities: ["audio"],
        supported_features: [],
        context_length: null,
      },
    ]);
  });

  it("keeps a model of two service types as two entries, each with its own providers", () => {
    const entries = modelList([route(provider("a", "alice"), "m"), route(provider("b", "bob"), "m", ServiceType.STT)]);
    expect(entries.map((entry) => [entry.service_type, entry.served_by])).to.deep.equal([
      ["llm", [{ provider: "a", owner: "alice" }]],
      ["stt", [{ provider: "b", owner: "bob" }]],
    ]);
  });
  it("names embedding and rerank models' type as the catalog does, with text in and no content modality out", () => {
    const box = provider("box", "alice");
    const entries = modelList([route(box, "nomic-embed", ServiceType.EMBEDDING), route(box, "bge-rerank", ServiceType.RERANK)]);
    expect(entries.map((e) => [e.id, e.service_type, e.input_modalities, e.output_modalities])).to.deep.equal([
      ["bge-rerank", "rerank", ["text"], []],
      ["nomic-embed", "embedding", ["text"], []],
    ]);
  });
});
