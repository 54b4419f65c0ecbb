"""Local corpus search (BM25 + lookup) and the offline behaviour of web_search. No network is used."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from agentlab.tools import LocalCorpus, Passage, ToolRegistry, default_corpus, search_tools, web_search
from agentlab.tools.builtin import builtin_tool_map, builtin_tools
from agentlab.tools.builtin import web as web_search_module

HOTPOTQA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hotpotqa"
HOTPOTQA_CORPUS = HOTPOTQA / "corpus.jsonl"
needs_hotpotqa = pytest.mark.skipif(not HOTPOTQA_CORPUS.is_file(), reason="hotpotqa corpus not present")


@pytest.fixture(scope="module")
def hotpotqa() -> LocalCorpus:
    return LocalCorpus(HOTPOTQA_CORPUS)


@pytest.fixture
def docs_folder(tmp_path: Path) -> Path:
    (tmp_path / "README.md").write_text(
        "# Gardening\n\nA guide to growing vegetables at home.\n\n"
        "## Tomatoes\n\nTomatoes need full sun and regular watering.\n\n"
        "```bash\n# not a heading: a comment inside a code fence\nwater --daily\n```\n\n"
        "## Compost\n\nCompost turns kitchen scraps into rich soil.\n"
    )
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "pests.txt").write_text("Aphids can be washed off with soapy water.\n")
    (tmp_path / "ignored.json").write_text("{}")
    return tmp_path


# --- corpus loading --------------------------------------------------------------------------------


def test_folder_of_markdown_and_text_is_split_into_titled_sections(docs_folder: Path) -> None:
    corpus = LocalCorpus(docs_folder)
    titles = [p.title for p in corpus.passages]
    assert titles == ["Gardening", "Gardening › Tomatoes", "Gardening › Compost", "pests"]
    tomatoes = corpus.passages[1]
    assert tomatoes.page == "Gardening"
    assert "# not a heading" in tomatoes.text  # fenced code stays inside its section
    assert corpus.page_titles() == ["Gardening", "pests"]


def test_long_sections_are_split_into_passages(tmp_path: Path) -> None:
    paragraphs = "\n\n".join(f"Paragraph {i} " + "word " * 100 for i in range(10))
    (tmp_path / "long.md").write_text(f"# Long\n\n## Body\n\n{paragraphs}\n")
    corpus = LocalCorpus(tmp_path / "long.md")
    assert len(corpus) > 1
    assert all(p.title == "Long › Body" and len(p.text) <= 1300 for p in corpus.passages)
    assert corpus.page("Long").count("Paragraph") == 10  # lookup of the page joins its passages


def test_jsonl_corpus(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [{"title": "Alpha", "text": "First letter."}, {"title": "Beta", "text": "Second letter."}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    corpus = LocalCorpus(path)
    assert corpus.passages == [Passage("Alpha", "First letter.", "Alpha"), Passage("Beta", "Second letter.", "Beta")]
    assert corpus.name == "c"


def test_bad_jsonl_line_and_missing_path_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "ok", "text": "fine"}\n{"name": "no title"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        LocalCorpus(path)
    with pytest.raises(FileNotFoundError):
        LocalCorpus(tmp_path / "missing.jsonl")


# --- search and lookup -----------------------------------------------------------------------------


async def test_local_search_on_small_corpus(docs_folder: Path) -> None:
    local_search, lookup = search_tools(LocalCorpus(docs_folder))
    assert (local_search.name, lookup.name) == ("local_search", "lookup")
    assert local_search.parameters["required"] == ["query"]
    assert local_search.parameters["properties"]["k"]["default"] == 3

    out = await local_search.invoke({"query": "how much sun do tomatoes need", "k": 1})
    assert out.ok
    assert out.content.startswith("[1] Gardening › Tomatoes\nTomatoes need full sun")
    assert "[2]" not in out.content

    nothing = await local_search.invoke({"query": "spaceships"})
    assert nothing.ok and "No passages match 'spaceships'" in nothing.content

    bad_k = await local_search.invoke({"query": "sun", "k": 50})
    assert bad_k.error == "invalid_arguments" and "'k'" in bad_k.content


async def test_lookup_exact_case_insensitive_and_fuzzy(docs_folder: Path) -> None:
    lookup = search_tools(LocalCorpus(docs_folder))[1]
    page = (await lookup.invoke({"title": "Gardening"})).content
    assert page.startswith("# Gardening\n") and "Tomatoes need full sun" in page and "Compost" in page

    section = (await lookup.invoke({"title": "Gardening › Compost"})).content
    assert section == "# Gardening › Compost\nCompost turns kitchen scraps into rich soil."

    assert (await lookup.invoke({"title": "PESTS"})).content.startswith("# pests\nAphids")

    fuzzy = (await lookup.invoke({"title": "Gardenning"})).content
    assert fuzzy.startswith("(No page titled 'Gardenning'; showing 'Gardening'.)\n# Gardening")

    missing = (await lookup.invoke({"title": "Quantum chromodynamics"})).content
    assert missing.startswith("No page titled 'Quantum chromodynamics'.")


@needs_hotpotqa
async def test_bm25_finds_the_relevant_hotpotqa_passage(hotpotqa: LocalCorpus) -> None:
    assert len(hotpotqa) == 1000
    local_search = search_tools(hotpotqa)[0]
    out = await local_search.invoke(
        {"query": "VIVA Media AG changed its name in 2004. What does their new acronym stand for?"}
    )
    assert out.ok and out.content.startswith("[1] VIVA Media\n")
    hits = hotpotqa.search("American comic book published by DC Comics under Vertigo, drawn by Eduardo Risso")
    assert hits[0].passage.title == "100 Bullets"
    # Each passage in the listing is trimmed: the model reads whole pages with lookup.
    for block in out.content.split("\n\n"):
        assert len(block.split("\n", 1)[1]) <= 402


@needs_hotpotqa
def test_bm25_recall_on_hotpotqa_dev_questions(hotpotqa: LocalCorpus) -> None:
    rows = [json.loads(line) for line in (HOTPOTQA / "dev.jsonl").read_text().splitlines() if line.strip()]
    found = total = 0
    for row in rows:
        titles = {hit.passage.title for hit in hotpotqa.search(row["question"], k=5)}
        found += sum(title in titles for title in row["supporting_titles"])
        total += len(row["supporting_titles"])
    assert found / total > 0.6  # about 0.78 when written; a broken index scores near zero


@needs_hotpotqa
async def test_lookup_on_hotpotqa(hotpotqa: LocalCorpus) -> None:
    lookup = search_tools(hotpotqa)[1]
    exact = (await lookup.invoke({"title": "100 Bullets"})).content
    assert exact.startswith("# 100 Bullets\n100 Bullets is an American comic book")
    fuzzy = (await lookup.invoke({"title": "100 bulets"})).content
    assert "showing '100 Bullets'" in fuzzy and "Eduardo Risso" in fuzzy


async def test_empty_corpus_says_so(tmp_path: Path) -> None:
    corpus = LocalCorpus.from_files([tmp_path / "README.md"], name="nothing here")
    assert len(corpus) == 0
    local_search, lookup = search_tools(corpus)
    for out in (await local_search.invoke({"query": "anything"}), await lookup.invoke({"title": "x"})):
        assert out.ok and "'nothing here' is empty" in out.content


async def test_default_corpus_never_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    corpus = default_corpus()
    assert corpus.name == "agentlab docs"
    out = await search_tools(corpus)[0].invoke({"query": "agent tools"})
    assert out.ok


def test_builtin_tool_lists() -> None:
    assert [t.name for t in builtin_tools()] == ["calculator", "web_search"]
    assert set(builtin_tool_map()) == {"calculator", "web_search", "local_search", "lookup", "python"}
    ToolRegistry(builtin_tools(LocalCorpus(passages=[Passage("a", "b")])))  # names do not collide


# --- web search offline ----------------------------------------------------------------------------


def _closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens here once the socket closes


async def test_web_search_fails_fast_with_clear_message_when_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web_search_module, "CONNECTIVITY_PROBE", ("127.0.0.1", _closed_local_port()))
    started = time.perf_counter()
    out = await web_search.invoke({"query": "python asyncio"})
    assert time.perf_counter() - started < 5
    assert not out.ok and out.error == "exception"
    assert "web search unavailable (no network)" in out.content
    assert "use local_search" in out.content.lower()


async def test_web_search_offline_here_fails_fast() -> None:
    if web_search_module.network_available():
        pytest.skip("this machine has network access; tests must not search the web")
    started = time.perf_counter()
    out = await web_search.invoke({"query": "python asyncio", "max_results": 3})
    assert time.perf_counter() - started < 5
    assert out.error == "exception" and "web search unavailable (no network)" in out.content


def test_web_search_schema() -> None:
    params = web_search.parameters
    assert params["required"] == ["query"]
    assert params["properties"]["max_results"] == {
        "type": "integer",
        "default": 5,
        "minimum": 1,
        "maximum": 10,
        "description": "How many results to return (1-10).",
    }


def test_a_passage_the_query_names_ranks_above_one_that_repeats_its_terms(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [
        {"title": "Release notes", "text": "Widgetron 2 is out. Widgetron got faster; Widgetron got smaller."},
        {"title": "Widgetron", "text": "Widgetron is a tool that makes widgets."},
        {"title": "Widgetron › Install", "text": "Install it with pip."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    corpus = LocalCorpus(path)
    assert [hit.passage.title for hit in corpus.search("What is Widgetron?", k=2)] == ["Widgetron", "Release notes"]
    # A title the query names only in part ("install", not "Widgetron") gets no boost; plain BM25 decides.
    assert corpus.search("How do I install it with pip?", k=1)[0].passage.title == "Widgetron › Install"
    assert [hit.passage.title for hit in corpus.search("Is it faster?", k=3)] == ["Release notes"]
