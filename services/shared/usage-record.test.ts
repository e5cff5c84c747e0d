import { toJson } from "@bufbuild/protobuf";
import { expect } from "chai";
import { UsageRecordSchema } from "../../gen/infermesh/v1/accounts_pb.js";
import { type UsageRecordData, usageRecordMessage } from "./usage-record.js";

describe("usageRecordMessage", () => {
  it("carries every field of a record, its time as a Timestamp", () => {
    const record: UsageRecordData = {
      id: "g-1",
      timeMs: 1_700_000_000_123,
      userId: "u-alice",
      keyId: "key-alice",
      providerId: "p-bob",
      providerOwnerId: "u-bob",
      providerName: "bobs-gpu",
      model: "sim-whisper",
      operation: "transcription",
      status: 200,
      promptTokens: 3,
      completionTokens: 5,
      audioSeconds: 2.5,
      images: 1,
      ttfbMs: 12.5,
      durationMs: 40.25,
    };
    expect(toJson(UsageRecordSchema, usageRecordMessage(record))).to.deep.equal({
      id: "g-1",
      time: "2023-11-14T22:13:20.123Z",
      userId: "u-alice",
      keyId: "key-alice",
      providerId: "p-bob",
      providerOwnerId: "u-bob",
      providerName: "bobs-gpu",
      model: "sim-whisper",
      operation: "transcription",
      status: 200,
      promptTokens: 3,
      completionTokens: 5,
      audioSeconds: 2.5,
      images: 1,
      ttfbMs: 12.5,
      durationMs: 40.25,
    });
  });
});
