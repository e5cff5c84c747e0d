import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type UsageRecord, UsageRecordSchema } from "../../gen/infermesh/v1/accounts_pb.js";

/**
 * UsageRecordData is one answered inference request, as UsageRecord in accounts.proto: what gateways record and the
 * registry stores. Times are milliseconds; ttfbMs is 0 when no byte of the answer's body went out.
 */
export interface UsageRecordData {
  /** id is unique per request, so that a batch sent twice is stored once. */
  readonly id: string;
  /** timeMs is when the request arrived, in milliseconds since the epoch. */
  readonly timeMs: number;
  readonly userId: string;
  readonly keyId: string;
  /** providerId, providerOwnerId and providerName name the provider that answered; empty when none did. */
  readonly providerId: string;
  readonly providerOwnerId: string;
  readonly providerName: string;
  /** model is the model as the provider serves it, or as asked when no provider answered. */
  readonly model: string;
  /** operation is the operation's label (inference-catalog.ts): "chat_completion", "transcription", ... */
  readonly operation: string;
  /** status is the HTTP status the caller got, 499 when the caller left first. */
  readonly status: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly audioSeconds: number;
  readonly images: number;
  readonly ttfbMs: number;
  readonly durationMs: number;
}

/** usageRecordMessage is a record as AccountService.RecordUsage carries it. */
export function usageRecordMessage(record: UsageRecordData): UsageRecord {
  const { timeMs, ...fields } = record;
  return create(UsageRecordSchema, { ...fields, time: timestampFromMs(timeMs) });
}
