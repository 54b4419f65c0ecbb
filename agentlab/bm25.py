"""BM25 relevance of one query against a small, changing list of texts (memories, solved tasks).

`LocalCorpus` keeps a persistent index for a fixed document collection; this scores every text
against a query so callers can mix relevance with other signals (recency, importance).
"""

from __future__ import annotations

from collections.abc import Sequence


def bm25_scores(query: str, texts: Sequence[str]) -> list[float]:
    """One BM25 score per text (0.0 where no query term occurs), English stopwords ignored."""
    if not texts:
        return []
    import bm25s  # lazy: pulls in numpy/scipy

    def tokenize(items: Sequence[str]) -> list[list[str]]:
        tokens: list[list[str]] = bm25s.tokenize(list(items), stopwords="en", return_ids=False, show_progress=False)
        return tokens

    query_tokens = tokenize([query])[0]
    documents = tokenize(texts)
    if not query_tokens or not any(documents):  # bm25s cannot index a corpus with no terms at all
        return [0.0] * len(texts)
    index = bm25s.BM25()
    index.index(documents, show_progress=False)
    return [float(score) for score in index.get_scores(query_tokens)]
