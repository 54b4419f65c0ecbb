"""Reading documents into passages: JSONL rows, or Markdown/text files split at their headings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agentlab._jsonl import jsonl_rows

# Long sections are split at paragraph breaks into passages of about this size, so that one BM25
# hit is a focused piece of text rather than a whole chapter.
MAX_PASSAGE_CHARS = 1200
TEXT_SUFFIXES = (".md", ".markdown", ".txt")
TITLE_SEPARATOR = " › "

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Passage:
    """A searchable piece of text. `page` names the document it came from (what `lookup` returns)."""

    title: str
    text: str
    page: str = ""

    @property
    def page_title(self) -> str:
        """The page this passage belongs to (its own title when it is a whole page)."""
        return self.page or self.title


def read_jsonl(path: Path) -> list[Passage]:
    """One passage per `{"title": ..., "text": ...}` line; each title is its own page."""
    passages = []
    for _, row in jsonl_rows(path, ("title", "text")):
        title, text = str(row["title"]), str(row["text"])
        passages.append(Passage(title=title, text=text, page=title))
    return passages


def _split_paragraphs(text: str, limit: int) -> list[str]:
    """Pack paragraphs into chunks of at most ~`limit` characters (a single huge paragraph stays whole)."""
    chunks: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if current and len(current) + len(paragraph) + 2 > limit:
            chunks.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        chunks.append(current)
    return chunks


def split_markdown(page: str, text: str, max_chars: int = MAX_PASSAGE_CHARS) -> list[Passage]:
    """Passages titled "Page › Section" for each heading's section (headings inside code fences ignored)."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            sections.append((heading.group(2).strip(), []))
        else:
            sections[-1][1].append(line)

    passages = []
    for section, body in sections:
        title = page if not section or section == page else f"{page}{TITLE_SEPARATOR}{section}"
        for chunk in _split_paragraphs("\n".join(body), max_chars):
            passages.append(Passage(title=title, text=chunk, page=page))
    return passages


def page_title_of(path: Path, text: str) -> str:
    """A Markdown file's first top-level heading, else the file name without its suffix."""
    if path.suffix.lower() in (".md", ".markdown"):
        for line in text.splitlines():
            heading = _HEADING.match(line)
            if heading and len(heading.group(1)) == 1:
                return heading.group(2).strip()
    return path.stem


def read_text_files(paths: list[Path], root: Path | None = None) -> list[Passage]:
    """Passages of Markdown/text files, one page per file; duplicate headings are told apart by path."""
    passages: list[Passage] = []
    used_titles: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        page = page_title_of(path, text)
        if page in used_titles:  # two files share a heading: tell them apart by their path
            page = str(path.relative_to(root).with_suffix("")) if root else str(path.with_suffix(""))
        used_titles.add(page)
        passages.extend(split_markdown(page, text))
    return passages


def text_files_under(folder: Path) -> list[Path]:
    """The Markdown/text files under `folder`, sorted, hidden files skipped."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES and not path.name.startswith(".")
    )
