import { expect } from "chai";
import { fakeFiles as files, refusalMessage as message } from "../../test/support/config-errors.js";
import { parseSimConfig } from "./sim-command.js";

const USERS_KEY = "im_0123456789abcdef_secretsecretsecretsecretsecretsecretsecret1";

describe("infermesh sim's flags", () => {
  it("ignores an exported INFERMESH_API_KEY and INFERMESH_LISTEN: the simulator's key and address are its own", () => {
    const config = parseSimConfig([], {
      INFERMESH_API_KEY: USERS_KEY,
      INFERMESH_API_KEY_FILE: "/nonexistent",
      INFERMESH_LISTEN: "0.0.0.0:1",
    });
    expect(config).to.deep.equal({ listen: { host: "127.0.0.1", port: 8090 }, options: {} });
  });

  it("reads its own INFERMESH_SIM_* variables", () => {
    const config = parseSimConfig([], {
      INFERMESH_SIM_LISTEN: "127.0.0.1:0",
      INFERMESH_SIM_API_KEY: "llama-key",
      INFERMESH_SIM_MODEL: "sim-llama,stt=sim-whisper",
      INFERMESH_SIM_TTFT_MS: "5",
    });
    expect(config).to.deep.equal({
      listen: { host: "127.0.0.1", port: 0 },
      options: {
        models: [
          { id: "sim-llama", kind: "llm" },
          { id: "sim-whisper", kind: "stt" },
        ],
        timeToFirstTokenMs: 5,
        apiKey: "llama-key",
      },
    });
  });

  it("reads the key it demands from --api-key-file or INFERMESH_SIM_API_KEY_FILE, trimmed", () => {
    expect(parseSimConfig(["--api-key-file", "k"], {}, files({ k: "llama-key\n" })).options.apiKey).to.equal("llama-key");
    expect(parseSimConfig([], { INFERMESH_SIM_API_KEY_FILE: "k" }, files({ k: " llama-key " })).options.apiKey).to.equal("llama-key");
    expect(message(() => parseSimConfig(["--api-key-file", "k"], {}, files({ k: "\n" })))).to.equal(
      "--api-key-file names an empty file, 'k'",
    );
  });

  it("declares embedding and rerank models by kind, as it does the others", () => {
    const config = parseSimConfig(["--model", "embedding=sim-embed", "--model", "rerank=sim-rerank"], {});
    expect(config.options.models).to.deep.equal([
      { id: "sim-embed", kind: "embedding" },
      { id: "sim-rerank", kind: "rerank" },
    ]);
  });

  it("serves every protocol unless --protocols lists fewer; none imitates a llama-server older than /v1/responses", () => {
    expect(parseSimConfig([], {}).options).to.not.have.property("protocols");
    expect(parseSimConfig(["--protocols", "none"], {}).options.protocols).to.deep.equal([]);
    expect(parseSimConfig(["--protocols", "messages, count_tokens"], {}).options.protocols).to.deep.equal(["messages", "count_tokens"]);
    expect(parseSimConfig([], { INFERMESH_SIM_PROTOCOLS: "responses" }).options.protocols).to.deep.equal(["responses"]);
  });

  it("says in plain words what each bad value should be", () => {
    expect(message(() => parseSimConfig(["--fail", "explode"], {}))).to.equal("--fail expects status, stall or drop, got 'explode'");
    expect(message(() => parseSimConfig(["--fail", "status", "--fail-status", "200"], {}))).to.equal(
      "--fail-status expects an HTTP error status from 400 to 599, got '200'",
    );
    expect(message(() => parseSimConfig(["--ttft-ms", "1s"], {}))).to.equal(
      "--ttft-ms expects a whole number of milliseconds from 0 to 600000, got '1s'",
    );
    expect(message(() => parseSimConfig(["--model", "gpu=x"], {}))).to.equal(
      "--model expects [KIND=]ID with KIND llm, stt, image, tts, embedding or rerank, got 'gpu=x'",
    );
    expect(message(() => parseSimConfig(["--protocols", "responses,chat"], {}))).to.equal(
      "--protocols expects a comma-separated list of responses, messages and count_tokens, or none, got 'responses,chat'",
    );
    expect(message(() => parseSimConfig([], { INFERMESH_SIM_LISTEN: "8090" }))).to.equal(
      "INFERMESH_SIM_LISTEN expects HOST:PORT with a port from 0 to 65535, got '8090'",
    );
  });
});
