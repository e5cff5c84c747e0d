import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { HeartbeatRequestSchema, Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import { DEFAULT_PROVIDER_SETTINGS, ProviderSettingsCache, withAgentSharing, withOwnerSharing } from "./provider-settings.js";
import type { ProviderSettings } from "./store/registry-store.js";

const beat = (instanceId: string, visibility = Visibility.PUBLIC, allowedUsers: string[] = []) =>
  create(HeartbeatRequestSchema, { providerId: "p", instanceId, sharing: { visibility, allowedUsers } });

describe("provider settings: an agent's --share against its owner's choice", () => {
  it("applies the sharing an agent starts with, once, and nothing for an agent that says none", () => {
    const started = withAgentSharing(DEFAULT_PROVIDER_SETTINGS, beat("run-1"));
    expect(started).to.deep.equal({ paused: false, sharing: { visibility: "public", allowedUsers: [] }, sharingInstanceId: "run-1" });
    expect(withAgentSharing(started as ProviderSettings, beat("run-1")), "a steady heartbeat writes nothing").to.equal(undefined);
    expect(withAgentSharing(DEFAULT_PROVIDER_SETTINGS, beat("run-1", Visibility.UNSPECIFIED))).to.equal(undefined);
  });

  it("lets the owner's choice win over the running agent's flag, and the next run's flag win over the owner's", () => {
    const started = withAgentSharing(DEFAULT_PROVIDER_SETTINGS, beat("run-1")) as ProviderSettings;
    const owner = withOwnerSharing(started, { visibility: "private", allowedUsers: [] }, "run-1");
    expect(withAgentSharing(owner, beat("run-1")), "the same run").to.equal(undefined);
    expect(withAgentSharing(owner, beat("run-2", Visibility.USERS, ["bob", "bob"]))).to.deep.equal({
      paused: false,
      sharing: { visibility: "users", allowedUsers: ["bob"] },
      sharingInstanceId: "run-2",
    });
  });

  it("keeps pause through a change of sharing", () => {
    const paused = { ...DEFAULT_PROVIDER_SETTINGS, paused: true };
    expect(withAgentSharing(paused, beat("run-1"))?.paused).to.equal(true);
  });

  it("reads settings from the store once per provider, and writes through", async () => {
    let reads = 0;
    const saved: [string, ProviderSettings][] = [];
    const cache = new ProviderSettingsCache({
      providerSettings: async (ids) => {
        reads++;
        return new Map((ids ?? []).map((id) => [id, { ...DEFAULT_PROVIDER_SETTINGS, paused: id === "stored" }]));
      },
      saveProviderSettings: async (id, settings) => {
        saved.push([id, settings]);
      },
    });
    expect((await cache.get("stored")).paused).to.equal(true);
    expect((await cache.get("stored")).paused).to.equal(true);
    expect(reads).to.equal(1);
    await cache.save("stored", DEFAULT_PROVIDER_SETTINGS);
    expect((await cache.get("stored")).paused).to.equal(false);
    expect(saved).to.deep.equal([["stored", DEFAULT_PROVIDER_SETTINGS]]);
  });
});
