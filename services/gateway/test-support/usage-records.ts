import type { UsageRecordData } from "../../shared/usage-record.js";

/** usageRecord is an answered chat completion's usage record, with the given id and model, for tests. */
export function usageRecord(id: string, model = "m"): UsageRecordData {
  return {
    id,
    timeMs: 1_700_000_000_000,
    userId: "u1",
    keyId: "k1",
    providerId: "p1",
    providerOwnerId: "u2",
    providerName: "gpu",
    model,
    operation: "chat_completion",
    status: 200,
    promptTokens: 3,
    completionTokens: 5,
    audioSeconds: 0,
    images: 0,
    ttfbMs: 1.5,
    durationMs: 2.5,
  };
}
