"""The HTML trace viewer: traces from real runs, rendered and opened in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from toolbox import add, call, chromium_browser, explode, model_for

from agentlab import Agent, tool
from agentlab.cli import main
from agentlab.testing import ScriptedServer
from agentlab.viewer import load_trace, render_html, split_runs

HOSTILE = "<script>document.title='pwned'</script><b id=\"injected\">bold</b>"


@tool
def fetch_page(url: str) -> str:
    """Return a page's HTML.

    Args:
        url: The address.
    """
    return f"page at {url}: {HOSTILE}"


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    """Two real runs appended to one trace: 4 steps (with a parse error and a failing tool), then 1 step."""
    path = tmp_path / "runs.jsonl"
    first = [
        call("add", "First I add the numbers.", a=2, b=3),
        call("fetch_page", "Now the page.", url="http://example.test"),
        {"tool_calls": [{"name": "add", "arguments": "{broken"}]},
        call("explode", "This will fail.", reason="demo"),
        call("final_answer", "Done.", answer="5"),
    ]
    with ScriptedServer(first) as srv:
        result = Agent(model=model_for(srv), tools=[add, fetch_page, explode], trace=path, max_parse_failures=3).run(
            "What is 2 + 3, and what is on the page?"
        )
    assert result.status == "done" and result.steps == 5
    with ScriptedServer([{"content": "Paris"}]) as srv:
        Agent(model=model_for(srv), tools=[add], trace=path).run("Capital of France?")
    return path


def test_page_escapes_content_and_lists_every_run(trace_file: Path):
    loaded = load_trace(trace_file)
    assert not loaded.problems
    runs = split_runs(loaded.events)
    assert [r[0]["task"] for r in runs] == ["What is 2 + 3, and what is on the page?", "Capital of France?"]
    page = render_html(loaded.events)
    assert HOSTILE not in page and "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own, nothing from the trace
    assert "http://" not in page.replace("http://example.test", "")  # nothing loaded from elsewhere
    assert page.count('class="step"') == 5 + 1
    assert 'href="#run-2"' in page and "boom: demo" in page and "Invalid JSON" in page


def test_cli_writes_the_page_and_reports_unreadable_lines(trace_file: Path, tmp_path: Path, capsys):
    bad_line = len(trace_file.read_text(encoding="utf-8").splitlines()) + 1
    with trace_file.open("a", encoding="utf-8") as file:
        file.write('{"kind": "run_started", "task": "cut off mid-wri\n')  # a crash mid-write
    out = tmp_path / "page.html"
    assert main(["view", str(trace_file), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert f"line {bad_line}: not JSON" in captured.err
    page = out.read_text(encoding="utf-8")
    assert "Some lines could not be read" in page and f"line {bad_line}: not JSON" in page
    assert page.count('class="run"') == 2  # the readable runs are all still there
    assert main(["view", str(tmp_path / "missing.jsonl")]) == 2


def test_unfinished_run_is_shown_as_such(trace_file: Path):
    events = load_trace(trace_file).events
    second_tool = [i for i, e in enumerate(events) if e["kind"] == "tool_started"][1]
    cut = events[: second_tool + 1]  # the trace stops right after a tool started
    page = render_html(cut)
    assert "Unfinished" in page and "still running when the trace ends" in page


def test_page_renders_in_a_real_browser(trace_file: Path, tmp_path: Path):
    out = tmp_path / "trace.html"
    assert main(["view", str(trace_file), "-o", str(out), "--title", "Two runs"]) == 0
    browser = chromium_browser(tmp_path / "chromium-profile")
    try:
        from selenium.webdriver.common.by import By

        browser.get(out.as_uri())
        assert browser.title == "Two runs"  # the hostile output's script never ran
        runs = browser.find_elements(By.CSS_SELECTOR, "article.run")
        assert len(runs) == 2
        assert len(runs[0].find_elements(By.CSS_SELECTOR, "li.step")) == 5
        assert len(runs[1].find_elements(By.CSS_SELECTOR, "li.step")) == 1
        thought = runs[0].find_element(By.CSS_SELECTOR, ".thought")
        assert thought.is_displayed() and "First I add the numbers." in thought.text
        results = runs[0].find_elements(By.CSS_SELECTOR, ".tool_result")
        assert results[0].is_displayed() and results[0].find_element(By.TAG_NAME, "pre").text == "5"
        assert HOSTILE in results[1].text  # shown as text
        assert not browser.find_elements(By.ID, "injected")
        failed = runs[0].find_element(By.CSS_SELECTOR, ".tool_result.failed")
        assert "boom: demo" in failed.text
        assert "done" in runs[1].find_element(By.CSS_SELECTOR, "footer.summary").text
        assert "Paris" in runs[1].text
        shot = tmp_path / "trace.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # The page's own script runs (its hash is allowed by the page's Content-Security-Policy).
        model_call = runs[0].find_element(By.CSS_SELECTOR, ".model_call")
        assert model_call.is_displayed() and "in ·" in model_call.text
        browser.find_element(By.ID, "hide-model").click()
        assert not model_call.is_displayed()
    finally:
        browser.quit()


def test_odd_but_valid_json_events_are_shown_not_a_crash(tmp_path: Path, capsys):
    """What a trace's writer never puts there (a hand-edited or foreign trace) is shown as best it can be."""
    import json

    events = [
        {"kind": "run_started", "task": "lone \ud800 surrogate", "tools": True, "time": 1e308, "run_id": "r"},
        {"kind": "model_call", "step": 1, "usage": {"prompt_tokens": "many"}, "duration": "slow", "time": "now"},
        {"kind": "decision", "step": 1, "tool_calls": True},
        {"kind": "decision", "step": 1, "tool_calls": ["not a call"]},
        {"kind": "tool_started", "step": 1, "call": "c1"},
        {"kind": "tool_result", "step": 1, "call": "c1", "output": "out", "ok": True, "duration": None},
        {"kind": "paused", "step": 1, "pending": "all"},
        {"kind": "run_finished", "status": "done", "usage": "lots", "duration": [], "answer": "A \ud800"},
    ]
    trace = tmp_path / "odd.jsonl"
    trace.write_text("".join(json.dumps(event) + "\n" for event in events))
    out = tmp_path / "odd.html"
    assert main(["view", str(trace), "-o", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    page = out.read_text(encoding="utf-8")
    assert "lone ? surrogate" in page and "0 in · 0 out · 0.00s" in page and "0 tokens" in page


def test_cli_refuses_an_output_in_a_missing_folder_with_one_line(trace_file: Path, tmp_path: Path, capsys):
    assert main(["view", str(trace_file), "-o", str(tmp_path / "nodir" / "page.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentlab view: cannot write") and err.count("\n") == 1
