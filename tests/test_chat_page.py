"""The streaming chat page (examples/static/chat.html) served by the FastAPI example: the SSE stream with
deltas over real HTTP, then the page in a real headless Chromium, talking to a slow scripted model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
httpx2 = pytest.importorskip("httpx2")

from pydantic import BaseModel  # noqa: E402
from test_embed_fastapi import load_example, serve  # noqa: E402
from toolbox import chromium_browser, model_for  # noqa: E402

from agentlab.testing import ScriptedServer  # noqa: E402

THOUGHT = "I will multiply seventeen by twenty-three with the calculator before I answer."
CLOSING = "The calculator says 391, so here is the result."


class Product(BaseModel):
    expression: str
    value: int
    remark: str


FINAL = {"expression": "17 * 23", "value": 391, "remark": "Seventeen twenty-threes make three hundred ninety-one."}


def slow_script(pause: float) -> list[dict[str, Any]]:
    """A thought and a calculator call, then a thought and the typed answer, each sent in 16-character
    chunks `pause` seconds apart (the first piece at once)."""
    return [
        {
            "content": THOUGHT,
            "tool_calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}],
            "chunk_delay": pause,
        },
        {"content": CLOSING, "tool_calls": [{"name": "final_answer", "arguments": FINAL}], "chunk_delay": pause},
    ]


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_stream_endpoint_sends_deltas_as_server_sent_events() -> None:
    example = load_example()
    with ScriptedServer(slow_script(0)) as srv:
        app = example.create_app(lambda: model_for(srv), output_type=Product)
        with serve(app) as base, httpx2.Client(base_url=base, timeout=60) as client:
            response = client.post("/stream", json={"task": "17 * 23?", "deltas": True})
            page = client.get("/chat")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert all(kind == data["kind"] for kind, data in events)
    content = "".join(d["text"] for k, d in events if k == "text_delta" and d["step"] == 1)
    assert content == THOUGHT
    assert "tool_call_delta" in kinds and "output_delta" in kinds
    assert events[-1][1]["output"] == FINAL and events[-1][1]["status"] == "done"
    assert page.status_code == 200 and '<form id="ask"' in page.text and "http" not in page.text.split("<script>")[1]


def test_chat_page_shows_tokens_as_they_arrive_in_a_real_browser(tmp_path: Path) -> None:
    example = load_example()
    browser = chromium_browser(tmp_path / "chromium-profile")
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        with ScriptedServer(slow_script(0.3)) as srv:
            app = example.create_app(lambda: model_for(srv), output_type=Product)
            with serve(app) as base:
                browser.get(f"{base}/chat")
                assert browser.title == "agentlab chat"
                browser.find_element(By.ID, "message").send_keys("What is 17 * 23?")
                browser.find_element(By.ID, "send").click()

                def first_text(driver: Any) -> Any:
                    texts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".run .text") if e.text]
                    return texts[0] if texts else None

                seen = WebDriverWait(browser, 60, poll_frequency=0.05).until(first_text)
                # Streamed: part of the thought is on the page while the run is still going.
                assert THOUGHT.startswith(seen) and seen != THOUGHT
                assert not browser.find_elements(By.CSS_SELECTOR, ".status")

                status = WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".status"))
                assert status[0].text.startswith("done after 2 steps")
                texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".run .text")]
                assert texts == [THOUGHT, CLOSING]
                card = browser.find_element(By.CSS_SELECTOR, ".tool")
                assert "calculator" in card.text and card.find_element(By.CSS_SELECTOR, ".result").text == "391"
                output = browser.find_element(By.CSS_SELECTOR, ".output.complete pre")
                assert json.loads(output.text) == FINAL
    finally:
        browser.quit()
