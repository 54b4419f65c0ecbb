"""`local_search` and `lookup` tools over a `LocalCorpus` (by default, this project's own docs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from agentlab._text import clip
from agentlab.tools.builtin.corpus import LocalCorpus
from agentlab.tools.function_tool import Tool, tool
from agentlab.tools.schema import grounded

# Queries and titles are words the run holds: a small model otherwise searches for words it made up. A title
# is a name, not the whole task.
_QUERY_OF_THE_RUN = grounded()
_NAME_OF_THE_RUN = grounded("phrase")
# Search results are a menu for the model to pick from; `lookup` gives the full page.
PASSAGE_PREVIEW_CHARS = 400


def _preview(text: str) -> str:
    return clip(text, PASSAGE_PREVIEW_CHARS, marker=" …", fold=True, at_word=True)


def _empty_corpus_message(corpus: LocalCorpus) -> str:
    return f"The local corpus '{corpus.name}' is empty: there are no documents to search."


def search_tools(corpus: LocalCorpus) -> list[Tool[..., Any]]:
    """`[local_search, lookup]` bound to `corpus`."""

    @tool(
        name="local_search",
        description=f"Search the local document collection '{corpus.name}' and return the best "
        "matching passages (title and text). Use lookup to read a whole page.",
        timeout=30.0,
    )
    def local_search(query: Annotated[str, _QUERY_OF_THE_RUN], k: Annotated[int, Field(ge=1, le=5)] = 3) -> str:
        """Search the local corpus.

        Args:
            query: Keywords or a question describing what to find.
            k: How many passages to return (1-5).
        """
        if not len(corpus):
            return _empty_corpus_message(corpus)
        hits = corpus.search(query, k)
        if not hits:
            return f"No passages match {query!r}. Try other keywords."
        return "\n\n".join(
            f"[{number}] {hit.passage.title}\n{_preview(hit.passage.text)}" for number, hit in enumerate(hits, 1)
        )

    @tool(
        name="lookup",
        description=f"Return the full text of the page with the given title from '{corpus.name}' "
        "(exact title works best; close spellings are matched).",
        timeout=10.0,
    )
    def lookup(title: Annotated[str, _NAME_OF_THE_RUN]) -> str:
        """Look up a page by title.

        Args:
            title: The page title, e.g. one returned by local_search.
        """
        if not len(corpus):
            return _empty_corpus_message(corpus)
        match = corpus.lookup(title)
        if match is None:
            similar = corpus.similar_titles(title)
            hint = f" Similar titles: {', '.join(similar)}." if similar else " Try local_search first."
            return f"No page titled {title!r}.{hint}"
        header = f"({match.note})\n" if match.note else ""
        return f"{header}# {match.title}\n{match.text}"

    return [local_search, lookup]


def _docs_in(root: Path) -> list[Path]:
    docs = root / "docs"
    found = [root / "README.md"]
    if docs.is_dir():
        found.extend(sorted(docs.glob("*.md")))
    return [path for path in found if path.is_file()]


def default_corpus() -> LocalCorpus:
    """This project's README.md and docs/*.md, found next to the package or in the working directory.

    Missing files are fine: the result may be an empty corpus, whose tools say so instead of failing.
    """
    package_root = Path(__file__).resolve().parents[3]  # agentlab/tools/builtin/ -> repository root
    candidates: dict[Path, None] = {}
    for root in (package_root, Path.cwd()):
        for path in _docs_in(root):
            candidates[path.resolve()] = None
    return LocalCorpus.from_files(list(candidates), name="agentlab docs")
