import { bodyFields } from "./generation-request.js";
import { sendError } from "./http-replies.js";
import type { LlamaError } from "./llama-errors.js";
import { invalidRequest, llamaError } from "./llama-errors.js";
import type { JsonBody } from "./llama-replies.js";
import { llamaPacing, wholeLlamaAnswer } from "./llama-replies.js";
import type { MediaContext } from "./media-replies.js";
import { isError } from "./media-replies.js";
import { selectModel } from "./model-selection.js";
import { expectedRanking, rerankTokenCount } from "./simulated-rerank.js";

/** RERANKING_NOT_SUPPORTED is llama-server's answer on its rerank routes when it was not started with --reranking. */
export const RERANKING_NOT_SUPPORTED: LlamaError = Object.freeze(
  llamaError(501, "This server does not support reranking. Start it with `--reranking`", "not_supported_error"),
);

/**
 * answerRerank answers /v1/rerank (and its aliases) as llama-server started with --reranking does, for models of kind
 * "rerank" only: any other model (or a simulator serving none) gets llama-server's 501, checked before the body. The
 * request is Jina's `{query, documents, top_n?, return_documents?}`, answered as a list of results sorted by score
 * (see simulated-rerank.ts); a request with `texts` instead of `documents` is TEI's, answered as a bare list with
 * `score` (and `text` with return_text).
 */
export function answerRerank(context: MediaContext, posted: JsonBody): void {
  const { res, config } = context;
  const name = posted.valid ? bodyFields(posted.value)["model"] : undefined;
  context.note(typeof name === "string" ? name : undefined, false);
  const selection = selectModel(name, "rerank", config);
  if (!selection.ok) {
    const problem = selection.problem;
    if (problem === "unknown") sendError(res, invalidRequest(`model '${selection.name}' not found`));
    else if (problem === "missing") sendError(res, invalidRequest("model name is missing from the request"));
    else sendError(res, RERANKING_NOT_SUPPORTED);
    return;
  }
  if (!posted.valid) {
    sendError(res, posted.error);
    return;
  }
  const fields = bodyFields(posted.value);
  const tei = "texts" in fields;
  const query = fields["query"];
  if (!("query" in fields)) {
    sendError(res, invalidRequest('"query" must be provided'));
    return;
  }
  if (typeof query !== "string") {
    sendError(res, invalidRequest('"query" must be a string'));
    return;
  }
  // llama-server reads documents (else texts) as a list of strings, and anything else as none.
  const documents = stringList(fields["documents"]) ?? stringList(fields["texts"]) ?? [];
  if (documents.length === 0) {
    sendError(res, invalidRequest('"documents" must be a non-empty string array'));
    return;
  }
  const topN = fields["top_n"];
  const limit = Number.isInteger(topN) ? Math.min(Math.max(0, topN as number), documents.length) : documents.length;
  const pacing = llamaPacing(fields["sim"], config);
  if (isError(pacing)) {
    sendError(res, pacing);
    return;
  }
  const model = typeof name === "string" ? name : selection.model.id;
  const withText = tei ? fields["return_text"] === true : fields["return_documents"] === true;
  context.play(
    wholeLlamaAnswer(pacing, () => {
      const ranking = expectedRanking(query, documents, limit);
      if (tei) {
        return JSON.stringify(
          ranking.map(({ index, relevance_score }) => ({ index, score: relevance_score, ...(withText ? { text: documents[index] } : {}) })),
        );
      }
      const results = ranking.map((ranked) => (withText ? { ...ranked, document: { text: documents[ranked.index] } } : ranked));
      const tokens = rerankTokenCount(query, documents);
      return JSON.stringify({ model, object: "list", usage: { prompt_tokens: tokens, total_tokens: tokens }, results });
    }),
  );
}

function stringList(value: unknown): readonly string[] | undefined {
  return Array.isArray(value) && (value as readonly unknown[]).every((item) => typeof item === "string") ? (value as string[]) : undefined;
}
