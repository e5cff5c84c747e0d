import * as http2 from "node:http2";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { AttachRequestSchema, type AttachResponse, AttachResponseSchema } from "../../gen/infermesh/v1/link_pb.js";
import { frameMessage, grpcMessage, MessageReader } from "../../services/shared/grpc/wire.js";
import { ATTACH_PATH } from "../../services/shared/link/link-protocol.js";

/**
 * RawLink is a TEST DOUBLE of an agent's link that does exactly what a test tells it, right or wrong: frames for
 * calls it was never given, garbage bytes, oversized messages, silence. It records the frames the gateway sends.
 */
export interface RawLink {
  readonly frames: AttachResponse["frame"][];
  /** status is the gRPC status the gateway ended the link with, once it did. */
  readonly status: { code: number; message: string } | undefined;
  readonly closed: boolean;
  send(frame: NonNullable<MessageInitShape<typeof AttachRequestSchema>["frame"]>): void;
  sendRaw(bytes: Buffer): void;
  destroy(): void;
}

/** openRawLink opens Attach on the gateway at baseUrl with the key; nothing is sent until the test sends it. */
export function openRawLink(baseUrl: string, apiKey: string): RawLink {
  const session = http2.connect(baseUrl);
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": ATTACH_PATH,
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${apiKey}`,
  });
  const frames: AttachResponse["frame"][] = [];
  const reader = new MessageReader(64 * 1024 * 1024);
  let status: { code: number; message: string } | undefined;
  let closed = false;
  const onHeaders = (headers: http2.IncomingHttpHeaders) => {
    if (headers["grpc-status"] !== undefined) {
      status = { code: Number(headers["grpc-status"]), message: grpcMessage(headers["grpc-message"]) };
    }
  };
  stream.on("response", onHeaders);
  stream.on("trailers", onHeaders);
  stream.on("data", (chunk: Buffer) => reader.push(chunk, (message) => frames.push(fromBinary(AttachResponseSchema, message).frame)));
  stream.on("error", () => {});
  stream.on("close", () => {
    closed = true;
    session.close();
  });
  return {
    frames,
    get status() {
      return status;
    },
    get closed() {
      return closed;
    },
    send(frame) {
      stream.write(
        frameMessage(toBinary(AttachRequestSchema, create(AttachRequestSchema, { frame } as MessageInitShape<typeof AttachRequestSchema>))),
      );
    },
    sendRaw(bytes) {
      stream.write(bytes);
    },
    destroy() {
      session.destroy();
    },
  };
}
