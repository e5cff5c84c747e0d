import { promptTokenCount } from "./simulated-text.js";

// Content rules of the simulator's reranking, shared by the route and by tests that predict them:
// - a document's relevance_score is the share of the query's distinct words (letters and digits, any case) that the
//   document contains, from 0 to 1;
// - results are sorted by score, highest first, ties in the documents' order, and cut to top_n;
// - each document costs the words of the query plus its own words in prompt tokens, as a reranker reads each pair.

/** RankedDocument is one result of a rerank: the document's index in the request and its score. */
export interface RankedDocument {
  readonly index: number;
  readonly relevance_score: number;
}

/** relevanceScore is the score the simulator gives document for query. */
export function relevanceScore(query: string, document: string): number {
  const wanted = wordsOf(query);
  if (wanted.size === 0) return 0;
  const present = wordsOf(document);
  let found = 0;
  for (const word of wanted) if (present.has(word)) found++;
  return found / wanted.size;
}

/** expectedRanking is the ranking the simulator answers for query and documents, top_n applied. */
export function expectedRanking(query: string, documents: readonly string[], topN: number = documents.length): RankedDocument[] {
  const ranked = documents.map((document, index) => ({ index, relevance_score: relevanceScore(query, document) }));
  // Array.prototype.sort is stable, so equal scores keep the documents' order.
  ranked.sort((a, b) => b.relevance_score - a.relevance_score);
  return ranked.slice(0, Math.max(0, topN));
}

/** rerankTokenCount is the prompt tokens a rerank of documents for query reports. */
export function rerankTokenCount(query: string, documents: readonly string[]): number {
  const queryTokens = promptTokenCount(query);
  return documents.reduce((total, document) => total + queryTokens + promptTokenCount(document), 0);
}

function wordsOf(text: string): Set<string> {
  return new Set(text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);
}
