import { expect } from "chai";
import { refusal as refused } from "../../test/support/config-errors.js";
import {
  listInWords,
  parseBaseUrl,
  parseDialAddress,
  parseLogLevel,
  parsePort,
  parseRegistryUrl,
  parseWholeNumber,
} from "./config-values.js";
import { formatHostPort, parseHostPort } from "./host-port.js";

describe("config values", () => {
  it("parses HOST:PORT, IPv6 in brackets, and writes it back", () => {
    expect(parseHostPort("--listen", "127.0.0.1:0")).to.deep.equal({ host: "127.0.0.1", port: 0 });
    expect(parseHostPort("--listen", "[::1]:7700")).to.deep.equal({ host: "[::1]", port: 7700 });
    expect(formatHostPort(parseHostPort("--listen", "gpu-box.local:65535"))).to.equal("gpu-box.local:65535");
  });

  it("says in words what an address expects, naming the setting", () => {
    const error = refused(() => parseHostPort("--listen", "localhost"));
    expect([error.setting, error.message]).to.deep.equal([
      "--listen",
      "--listen expects HOST:PORT with a port from 0 to 65535, got 'localhost'",
    ]);
    expect(refused(() => parseHostPort("--listen", "h:65536")).message).to.match(/port from 0 to 65535/);
    expect(refused(() => parseDialAddress("--agent", "h:0")).message).to.equal("--agent expects a port from 1 to 65535, got 'h:0'");
    expect(refused(() => parseDialAddress("--agent", "h")).message).to.equal(
      "--agent expects HOST:PORT with a port from 1 to 65535, got 'h'",
    );
    expect(refused(() => parsePort("--port", "http")).message).to.equal("--port expects a port from 0 to 65535, got 'http'");
  });

  it("normalises base URLs and registry addresses, never echoing a URL's password", () => {
    expect(parseBaseUrl("--upstream", "http://h:1/v1/")).to.equal("http://h:1");
    expect(parseBaseUrl("--upstream", "https://h/proxy/v1")).to.equal("https://h/proxy");
    expect(parseRegistryUrl("--registry", "10.0.0.1:7700")).to.equal("http://10.0.0.1:7700");
    expect(parseRegistryUrl("--registry", "https://registry.example:443/")).to.equal("https://registry.example");
    const error = refused(() => parseBaseUrl("--upstream", "http://user:hunter2@h:1"));
    expect(error.message).to.equal("--upstream expects a URL without a user name or password");
    expect(refused(() => parseBaseUrl("--upstream", "ftp://h")).message).to.equal(
      "--upstream expects an http:// or https:// URL, got 'ftp://h'",
    );
  });

  it("reads whole numbers from text or JSON numbers, in the unit it names", () => {
    expect(parseWholeNumber("--n", "12", 0, 20, "tokens")).to.equal(12);
    expect(parseWholeNumber("field n", 12, 0, 20, "tokens")).to.equal(12);
    for (const bad of ["-1", "1.5", "1e3", " 1", "", 1.5, true]) {
      expect(refused(() => parseWholeNumber("--n", bad, 0, 2000, "tokens")).message, String(bad)).to.equal(
        `--n expects a whole number of tokens from 0 to 2000, got '${String(bad)}'`,
      );
    }
  });

  it("lists choices as a sentence does", () => {
    expect([listInWords([]), listInWords(["a"]), listInWords(["a", "b"]), listInWords(["a", "b", "c"], "and")]).to.deep.equal([
      "",
      "a",
      "a or b",
      "a, b and c",
    ]);
    expect(refused(() => parseLogLevel("--log-level", "loud")).message).to.equal(
      "--log-level expects one of fatal, error, warn, info, debug, trace or silent, got 'loud'",
    );
  });
});
