"""A local document collection with BM25 retrieval and ReAct-style page lookup."""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentlab.tools.builtin.corpus_files import (
    TEXT_SUFFIXES,
    Passage,
    read_jsonl,
    read_text_files,
    text_files_under,
)


@dataclass(frozen=True)
class SearchHit:
    """A passage and its BM25 score for one query."""

    passage: Passage
    score: float


@dataclass(frozen=True)
class PageMatch:
    """The page `lookup` settled on; `note` is set when it is not an exact title match."""

    title: str
    text: str
    note: str | None = None


class LocalCorpus:
    """Passages from a JSONL file (`{"title", "text"}` per line), a Markdown/text file, or a folder of them.

    The BM25 index is built on the first search, so creating a corpus is cheap and does not import
    the search library.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        passages: Iterable[Passage] = (),
        name: str | None = None,
    ) -> None:
        loaded = list(passages)
        if path is not None:
            source = Path(path)
            loaded.extend(_load(source))
            name = name or source.stem
        self.name = name or "local corpus"
        self.passages: list[Passage] = loaded
        self._pages: dict[str, list[Passage]] = {}
        for passage in loaded:
            self._pages.setdefault(passage.page_title, []).append(passage)
        self._index: tuple[Any, list[frozenset[str]]] | None = None
        self._index_lock = threading.Lock()

    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike[str]], *, name: str | None = None) -> LocalCorpus:
        """A corpus of the given Markdown/text files; missing ones are skipped."""
        existing = [Path(p) for p in paths if Path(p).is_file()]
        root = Path(os.path.commonpath([p.resolve().parent for p in existing])) if existing else None
        resolved = [p.resolve() for p in existing]
        return cls(passages=read_text_files(resolved, root), name=name)

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        return f"LocalCorpus(name={self.name!r}, passages={len(self.passages)}, pages={len(self._pages)})"

    def page_titles(self) -> list[str]:
        """Every page's title, in corpus order."""
        return list(self._pages)

    def search(self, query: str, k: int = 3) -> list[SearchHit]:
        """The `k` best passages for `query` by BM25; passages sharing no term with it are left out.

        A passage whose title the query names in full (every title term is in the query) ranks above the
        rest: a question usually names the page it is about, and BM25 alone prefers any passage that
        repeats a common term (on a project's own docs, "What is agentlab?" found benchmark sections that
        say "agentlab" ten times before the README's opening, titled "agentlab")."""
        if not self.passages or k <= 0:
            return []
        import bm25s  # lazy: pulls in numpy/scipy, which most runs never need

        query_tokens = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)
        if not query_tokens[0]:
            return []
        index, title_terms = self._bm25_index()
        scores = index.get_scores(query_tokens[0])
        named = set(query_tokens[0])
        boost = float(scores.max()) + 1.0
        ranked = [
            (float(score) + (boost if terms and terms <= named else 0.0), position)
            for position, (score, terms) in enumerate(zip(scores, title_terms, strict=True))
        ]
        ranked.sort(key=lambda pair: (-pair[0], pair[1]))
        return [SearchHit(self.passages[position], score) for score, position in ranked[:k] if score > 0]

    def _bm25_index(self) -> tuple[Any, list[frozenset[str]]]:
        with self._index_lock:  # tools run on worker threads; build once
            if self._index is None:
                import bm25s

                # The title is indexed with the text: questions usually name the page they are about.
                texts = [f"{p.title}\n{p.text}" for p in self.passages]
                tokens = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
                index = bm25s.BM25()
                index.index(tokens, show_progress=False)
                titles = bm25s.tokenize(
                    [p.title for p in self.passages], stopwords="en", return_ids=False, show_progress=False
                )
                self._index = (index, [frozenset(terms) for terms in titles])
            return self._index

    def page(self, title: str) -> str | None:
        """The full text of a page (or section) with exactly this title, else None."""
        if title in self._pages:
            return "\n\n".join(p.text for p in self._pages[title])
        sections = [p for p in self.passages if p.title == title]
        return "\n\n".join(p.text for p in sections) if sections else None

    def lookup(self, title: str) -> PageMatch | None:
        """Find a page by title: exact, then case-insensitive, then containing, then closest spelling."""
        wanted = title.strip()
        exact = self.page(wanted)
        if exact is not None:
            return PageMatch(wanted, exact)
        titles = list(dict.fromkeys([*self._pages, *(p.title for p in self.passages)]))
        by_lower = {t.lower(): t for t in reversed(titles)}  # reversed: the first spelling wins
        folded = wanted.casefold()
        if folded in by_lower:
            found = by_lower[folded]
            return PageMatch(found, self.page(found) or "")
        containing = [t for t in titles if folded and folded in t.lower()]
        close = difflib.get_close_matches(folded, list(by_lower), n=1, cutoff=0.6)
        if close:
            found = by_lower[close[0]]
        elif containing:
            found = min(containing, key=len)
        else:
            return None
        return PageMatch(found, self.page(found) or "", note=f"No page titled {wanted!r}; showing {found!r}.")

    def similar_titles(self, title: str, n: int = 5) -> list[str]:
        """Up to `n` page titles close to `title`, best first (for "did you mean" hints)."""
        return difflib.get_close_matches(title, self.page_titles(), n=n, cutoff=0.3)


def _load(source: Path) -> list[Passage]:
    if source.is_dir():
        return read_text_files(text_files_under(source), source)
    if not source.is_file():
        raise FileNotFoundError(f"corpus not found: {source}")
    if source.suffix.lower() == ".jsonl":
        return read_jsonl(source)
    if source.suffix.lower() in TEXT_SUFFIXES:
        return read_text_files([source], source.parent)
    raise ValueError(f"unsupported corpus file {source}: use .jsonl, or .md/.txt files or a folder of them")
