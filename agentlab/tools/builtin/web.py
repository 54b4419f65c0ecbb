"""The web_search tool, through DuckDuckGo & co. (`ddgs`), failing fast and clearly when offline."""

from __future__ import annotations

import socket
import threading
from typing import Annotated, Any

from pydantic import Field

from agentlab.tools.function_tool import tool
from agentlab.tools.schema import grounded

# Where to knock to learn whether the internet is reachable. A module attribute so tests (and
# people behind unusual networks) can point it elsewhere.
CONNECTIVITY_PROBE: tuple[str, int] = ("duckduckgo.com", 443)
PROBE_TIMEOUT = 1.5
SEARCH_TIMEOUT = 8


class SearchUnavailable(RuntimeError):
    """Web search cannot run right now (offline, blocked or rate limited)."""


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """`getaddrinfo` with a deadline: it has no timeout of its own and can hang for many seconds."""
    answer: list[Any] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failure.append(exc)

    worker = threading.Thread(target=lookup, name="dns-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"DNS lookup of {host} took longer than {timeout:g} s")
    if failure:
        raise failure[0]
    return answer


def check_connectivity(probe: tuple[str, int] | None = None, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise `SearchUnavailable` unless a TCP connection to the probe host opens within `timeout`."""
    host, port = probe or CONNECTIVITY_PROBE
    try:
        addresses = _resolve(host, port, timeout)
        if not addresses:
            raise OSError(f"no address for {host}")
        family, kind, proto, _, address = addresses[0]
        with socket.socket(family, kind, proto) as connection:
            connection.settimeout(timeout)
            connection.connect(address)
    except OSError as exc:  # includes socket.gaierror and TimeoutError
        raise SearchUnavailable(
            f"web search unavailable (no network): cannot reach {host}:{port} ({exc}). "
            "Use local_search instead, or answer from what you already know."
        ) from None


def network_available(probe: tuple[str, int] | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when a TCP connection to the probe host (by default a public one) opens within `timeout` seconds."""
    try:
        check_connectivity(probe, timeout)
    except SearchUnavailable:
        return False
    return True


def _format_results(query: str, results: list[dict[str, Any]]) -> str:
    if not results:
        return f"No web results for {query!r}. Try different keywords."
    lines = []
    for number, result in enumerate(results, 1):
        title = str(result.get("title", "")).strip() or "(untitled)"
        url = str(result.get("href") or result.get("url") or "").strip()
        snippet = " ".join(str(result.get("body", "")).split())
        lines.append(f"[{number}] {title}\n{url}\n{snippet}".rstrip())
    return "\n\n".join(lines)


@tool(timeout=20.0)
def web_search(
    query: Annotated[str, grounded()],
    max_results: Annotated[int, Field(ge=1, le=10)] = 5,
) -> str:
    """Search the web and return the top results (title, URL and snippet).

    Args:
        query: What to search for, as keywords.
        max_results: How many results to return (1-10).
    """
    # Probe first: offline, the search library would otherwise spend its full timeout per backend.
    check_connectivity()
    from ddgs import DDGS  # imported lazily: heavy, and only needed when a search really runs
    from ddgs.exceptions import DDGSException

    try:
        results = DDGS(timeout=SEARCH_TIMEOUT).text(query, max_results=max_results)
    except DDGSException as exc:
        raise SearchUnavailable(f"web search failed ({exc}). Try again later or use local_search.") from None
    return _format_results(query, results[:max_results])
