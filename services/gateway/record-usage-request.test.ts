import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import { RecordUsageRequestSchema } from "../../gen/infermesh/v1/accounts_pb.js";
import { type UsageRecordData, usageRecordMessage } from "../shared/usage-record.js";
import { recordUsageRequest } from "./record-usage-request.js";

const full: UsageRecordData = {
  id: "0b5c1f8e-3a4d-4f7e-9b2c-1d2e3f4a5b6c-1z",
  timeMs: 1_700_000_000_123,
  userId: "u-alice",
  keyId: "key-alice",
  providerId: "p-bob",
  providerOwnerId: "u-bob",
  providerName: "bob's GPU",
  model: "sim-llama",
  operation: "chat_completion",
  status: 200,
  promptTokens: 12,
  completionTokens: 16,
  audioSeconds: 2.5,
  images: 3,
  ttfbMs: 3.25,
  durationMs: 5.125,
};

/** RECORDS are records whose encodings take every path: empty and zero fields, long and non-ASCII strings, large numbers. */
const RECORDS: readonly UsageRecordData[] = [
  full,
  {
    ...full,
    id: "",
    timeMs: 0,
    userId: "",
    keyId: "",
    providerId: "",
    providerOwnerId: "",
    providerName: "",
    model: "",
    operation: "",
    status: 0,
    promptTokens: 0,
    completionTokens: 0,
    audioSeconds: 0,
    images: 0,
    ttfbMs: 0,
    durationMs: 0,
  },
  { ...full, timeMs: 1_700_000_000_000, status: 499, promptTokens: 4_294_967_295, completionTokens: 128, images: 127 },
  { ...full, model: "modèle-ü-日本語-🦙", providerName: "x".repeat(300), keyId: "session:ims_0123456789abcdef" },
  { ...full, timeMs: 32_503_680_000_999, audioSeconds: 1e-9, ttfbMs: 123_456.789, durationMs: Number.MAX_VALUE },
];

describe("recordUsageRequest", () => {
  it("encodes records byte for byte as protobuf-es encodes them, a lone surrogate as U+FFFD too", () => {
    const records = [...RECORDS, { ...full, operation: "\ud800" }];
    const reference = toBinary(RecordUsageRequestSchema, create(RecordUsageRequestSchema, { records: records.map(usageRecordMessage) }));
    const encoded = toBinary(RecordUsageRequestSchema, recordUsageRequest(records));
    expect(Buffer.from(encoded).toString("hex")).to.equal(Buffer.from(reference).toString("hex"));
  });

  it("decodes to the records, each once, in order", () => {
    const decoded = fromBinary(RecordUsageRequestSchema, toBinary(RecordUsageRequestSchema, recordUsageRequest(RECORDS)));
    expect(decoded.records).to.deep.equal(RECORDS.map(usageRecordMessage));
  });

  it("encodes an empty batch as an empty request", () => {
    expect(toBinary(RecordUsageRequestSchema, recordUsageRequest([]))).to.deep.equal(new Uint8Array(0));
  });
});
