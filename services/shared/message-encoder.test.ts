import { create, fromBinary, ScalarType, toBinary } from "@bufbuild/protobuf";
import type { DescField, DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { expect } from "chai";
import * as capabilities from "../../gen/infermesh/v1/capabilities_pb.js";
import * as inference from "../../gen/infermesh/v1/inference_pb.js";
import { InferResponseSchema } from "../../gen/infermesh/v1/inference_pb.js";
import * as registry from "../../gen/infermesh/v1/registry_pb.js";
import { encodeMessage } from "./message-encoder.js";

type InferResponseInit = MessageInitShape<typeof InferResponseSchema>;

function protobufEs(schema: DescMessage, init: unknown): Buffer {
  return Buffer.from(toBinary(schema, create(schema, init as MessageInitShape<DescMessage>)));
}

const ALL_SCHEMAS: readonly DescMessage[] = [capabilities, inference, registry].flatMap((file) =>
  Object.values(file).filter((value): value is DescMessage => (value as DescMessage | undefined)?.kind === "message"),
);

/** Random draws the same values on every run, so a failure can be replayed. */
class Random {
  #state = 0x2545f491;
  next(): number {
    this.#state ^= this.#state << 13;
    this.#state ^= this.#state >>> 17;
    this.#state ^= this.#state << 5;
    return (this.#state >>> 0) / 0x1_0000_0000;
  }
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(values: readonly T[]): T {
    return values[this.below(values.length)] as T;
  }
}

const STRINGS = ["", "a", "stop", "ünïcödé ✓ 🚀", "\ud800 lone surrogate", "x".repeat(200), "y".repeat(20_000)];
const NUMBERS = [0, 1, 127, 128, 16_383, 16_384, 2_097_152, 0x7fff_ffff];

/** randomInit draws an init object for schema, each field set or left out, with edge values of its type. */
function randomInit(schema: DescMessage, random: Random, depth = 0): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  for (const oneof of schema.oneofs) {
    const field = random.pick([undefined, ...oneof.fields]);
    if (field) init[oneof.localName] = { case: field.localName, value: randomValue(field, random, depth) };
  }
  for (const field of schema.fields) {
    if (field.oneof || random.below(3) === 0) continue;
    if (field.fieldKind === "list") {
      init[field.localName] = Array.from({ length: random.below(4) }, () => randomValue(field, random, depth));
    } else if (field.fieldKind === "map") {
      init[field.localName] = Object.fromEntries(Array.from({ length: random.below(3) }, () => [random.pick(STRINGS.slice(0, 5)), random.pick(STRINGS)]));
    } else {
      init[field.localName] = randomValue(field, random, depth);
    }
  }
  return init;
}

function randomValue(field: DescField, random: Random, depth: number): unknown {
  const message = field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message") ? field.message : undefined;
  if (message) return depth > 3 ? {} : randomInit(message, random, depth + 1);
  const isEnum = field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum");
  if (isEnum) return random.pick([0, 1, 2, -1, -0x8000_0000]);
  switch ((field as { scalar: ScalarType }).scalar) {
    case ScalarType.STRING:
      return random.pick(STRINGS);
    case ScalarType.BYTES:
      return Buffer.from(random.pick(STRINGS));
    case ScalarType.BOOL:
      return random.below(2) === 1;
    case ScalarType.UINT32:
      return random.pick([...NUMBERS, 0xffff_ffff]);
    case ScalarType.INT32:
      return random.pick([...NUMBERS, -1, -0x8000_0000]);
    case ScalarType.INT64:
    case ScalarType.UINT64:
      return BigInt(random.pick(NUMBERS));
    default:
      return random.pick(NUMBERS);
  }
}

describe("encodeMessage", () => {
  it("writes the agent's answers byte for byte as protobuf-es does", () => {
    const body = Buffer.from('{"choices":[{"index":0,"finish_reason":"stop"}]}');
    const answers: InferResponseInit[] = [
      {},
      { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } },
      { part: { part: { case: "head", value: { status: 200, contentType: "audio/wav", headers: { "x-a": "1", "x-b": "" } } } } },
      { part: { part: { case: "data", value: new Uint8Array(0) } } },
      { part: { part: { case: "data", value: Buffer.alloc(70_000, 7) } } },
      { part: { part: { case: "event", value: { data: body, event: "" } } } },
      { part: { part: { case: "trailer", value: { usage: {}, finishReasons: [] } } } },
      { part: { part: { case: "error", value: { type: "timeout", httpStatus: 504, message: "the deadline passed – ✓" } } } },
      {
        parts: [
          { part: { case: "head", value: { status: 200, contentType: "application/json" } } },
          { part: { case: "data", value: body } },
          {
            part: {
              case: "trailer",
              value: {
                usage: { promptTokens: 12, completionTokens: 16, totalTokens: 28, cachedPromptTokens: 0, reasoningTokens: 0 },
                finishReasons: ["stop", "length"],
              },
            },
          },
        ],
      },
    ];
    for (const answer of answers) {
      const bytes = encodeMessage(InferResponseSchema, answer);
      expect(bytes.toString("hex"), JSON.stringify(answer).slice(0, 200)).to.equal(protobufEs(InferResponseSchema, answer).toString("hex"));
      // A message protobuf-es created itself encodes the same way.
      expect(encodeMessage(InferResponseSchema, create(InferResponseSchema, answer)).equals(bytes)).to.equal(true);
    }
  });

  it("agrees with protobuf-es on random messages of every schema of the contract", () => {
    const random = new Random();
    expect(ALL_SCHEMAS.length).to.be.greaterThan(30);
    for (const schema of ALL_SCHEMAS) {
      for (let round = 0; round < 40; round++) {
        const init = randomInit(schema, random);
        const bytes = encodeMessage(schema, init);
        expect(bytes.equals(protobufEs(schema, init)), `${schema.typeName} ${round}`).to.equal(true);
        fromBinary(schema, bytes);
      }
    }
  });

  it("leaves values of the wrong type to protobuf-es: the same bytes, or the same error naming the field", () => {
    const outcome = (encode: () => Buffer) => {
      try {
        return encode().toString("hex");
      } catch (error) {
        return `error: ${(error as Error).message}`;
      }
    };
    const wrongHeads = [{ status: "200" }, { status: -1 }, { status: 1.5 }, { status: 2 ** 32 }, { contentType: 5 }, { headers: { a: 1 } }];
    const outcomes = wrongHeads.map((head) => {
      const answer = { part: { part: { case: "head", value: head } } } as unknown as InferResponseInit;
      const ours = outcome(() => encodeMessage(InferResponseSchema, answer));
      expect(ours, JSON.stringify(head)).to.equal(outcome(() => protobufEs(InferResponseSchema, answer)));
      return ours.startsWith("error");
    });
    expect(outcomes).to.include(true);
  });
});
