"""agentlab's HTTP/1.1 client (`agentlab.models.http1`) as `OpenAIModel` uses it: against the scripted server,
and against small raw servers on loopback for what a well-behaved server never does (replies cut into odd
pieces, connections closed between requests or mid-body, silence, redirects, compression)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest

from agentlab.models import ModelError, ModelRequest, OpenAIModel, http1
from agentlab.models.base import ReplyDelta
from agentlab.models.wire import Endpoint, tls_context, uses_proxy
from agentlab.testing import ScriptedServer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
HI = ModelRequest(messages=[{"role": "user", "content": "hi"}])


def completion(text: str) -> bytes:
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    return json.dumps(reply).encode()


def reply_bytes(body: bytes, *, status: str = "200 OK", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request's head and body; None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


class RawServer:
    """A loopback server running `handler(reader, writer, connection_number)` for each connection, on the
    test's own event loop; counts connections and keeps each request's head."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        request = await read_request(reader)
        if request is not None:
            self.heads.append(request[0])
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def model_at(url: str, **options: Any) -> OpenAIModel:
    return OpenAIModel("m", base_url=url, api_key="k", decision_format="tools", **options)


def pool_of(model: OpenAIModel) -> http1.ConnectionPool:
    endpoint = model._endpoint_here()
    assert endpoint.client is not None, "expected agentlab's own HTTP client (no proxy in the environment)"
    return endpoint.client.pool


@pytest.fixture(autouse=True)
def no_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def test_sequential_requests_share_one_kept_alive_connection() -> None:
    async with ScriptedServer([{"content": str(i)} for i in range(5)]) as srv:
        model = model_at(srv.base_url)
        replies = [await model.complete(HI) for _ in range(5)]
        pool = pool_of(model)
        assert (pool.open_count, pool.idle_count) == (1, 1)
        await model.aclose()
        assert pool.open_count == 0
    assert [r.content for r in replies] == ["0", "1", "2", "3", "4"]


async def test_concurrent_requests_open_a_connection_each_and_all_return_to_the_pool() -> None:
    async with ScriptedServer(lambda body, index: {"content": body["messages"][0]["content"]}, latency=0.05) as srv:
        model = model_at(srv.base_url)
        asks = [ModelRequest(messages=[{"role": "user", "content": str(i)}]) for i in range(8)]
        replies = await asyncio.gather(*[model.complete(ask) for ask in asks])
        pool = pool_of(model)
        assert (pool.open_count, pool.idle_count) == (8, 8)
        await model.complete(asks[0])  # takes an idle one: no ninth connection
        assert pool.open_count == 8
        await model.aclose()
    assert [r.content for r in replies] == [str(i) for i in range(8)]


async def test_a_chunked_event_stream_cut_anywhere_is_read_whole() -> None:
    events = b"".join(
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}).encode() + b"\r\n\r\n"
        for piece in ["Hel", "lo, ", "wörld"]
    )
    events += b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\n\r\ndata: [DONE]\r\n\r\n'
    # Chunks of 7 bytes, and the wire cut into 5-byte writes: sizes, CRLFs and UTF-8 all split.
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(events[i : i + 7]), events[i : i + 7]) for i in range(0, len(events), 7))
    chunked += b"0\r\n\r\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while await server.request(reader):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(chunked), 5):
                writer.write(chunked[start : start + 5])
                await writer.drain()
                await asyncio.sleep(0)

    async with RawServer(handler) as server:
        model = model_at(server.url)
        pieces: list[ReplyDelta] = []
        first = await model.complete(HI, on_delta=pieces.append)
        second = await model.complete(HI, on_delta=pieces.append)
        assert pool_of(model).idle_count == 1  # the body was read to its end: the connection was kept
        await model.aclose()
    assert first.content == second.content == "Hello, wörld"
    assert "".join(p.text or "" for p in pieces) == "Hello, wörldHello, wörld"
    assert server.connections == 1


async def test_a_kept_alive_connection_the_server_dropped_is_replaced_without_an_error() -> None:
    # Each connection answers one request; the next request on it is read and the connection closed
    # unanswered, as a server whose keep-alive timeout fired just then does.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.request(reader)
        writer.write(reply_bytes(completion(f"on connection {number}")))
        await writer.drain()
        await server.request(reader)

    async with RawServer(handler) as server:
        model = model_at(server.url, max_attempts=1)  # no retry of the run's own: the client resends
        retries: list[str] = []
        first = await model.complete(HI, lambda attempt, error, wait: retries.append(error))
        second = await model.complete(HI, lambda attempt, error, wait: retries.append(error))
        await model.aclose()
    assert (first.content, second.content) == ("on connection 1", "on connection 2")
    assert retries == [] and server.connections == 2 and len(server.heads) == 3


async def test_an_idle_connection_closed_by_the_server_is_not_used_again() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.request(reader)
        writer.write(reply_bytes(completion(f"on connection {number}")))
        await writer.drain()  # then closed, without a `Connection: close` header

    async with RawServer(handler) as server:
        model = model_at(server.url, max_attempts=1)
        first = await model.complete(HI)
        await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
        second = await model.complete(HI)
        await model.aclose()
    assert (first.content, second.content) == ("on connection 1", "on connection 2")
    assert len(server.heads) == 2


async def test_a_body_cut_short_is_a_connection_error_and_the_run_retries_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while await server.request(reader):
            body = completion("whole")
            if number == 1:
                writer.write(reply_bytes(body)[: -len(body) // 2])  # half the body, then the connection ends
                await writer.drain()
                return
            writer.write(reply_bytes(body))
            await writer.drain()

    async with RawServer(handler) as server:
        once = model_at(server.url, max_attempts=1)
        with pytest.raises(ModelError) as failed:
            await once.complete(HI)
        assert pool_of(once).open_count == 0  # the broken connection is not kept
        await once.aclose()
        retried = model_at(server.url, max_attempts=2, max_retry_wait=0.0)
        retries: list[str] = []
        reply = await retried.complete(HI, lambda attempt, error, wait: retries.append(error))
        await retried.aclose()
    assert type(failed.value.__cause__) is openai.APIConnectionError
    assert isinstance(failed.value.__cause__.__cause__, http1.ConnectionBroken)
    assert reply.content == "whole" and retries == []  # connection 2 answered the retrying model at once

    server.connections = 0
    async with RawServer(handler) as server:
        retried = model_at(server.url, max_attempts=2, max_retry_wait=0.0)
        reply = await retried.complete(HI, lambda attempt, error, wait: retries.append(error))
        await retried.aclose()
    assert reply.content == "whole" and len(retries) == 1 and "APIConnectionError" in retries[0]


async def test_a_server_that_says_nothing_times_out_as_the_openai_client_does() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.request(reader)
        await reader.read()  # silent until the client hangs up

    async with RawServer(handler) as server:
        model = model_at(server.url, max_attempts=1, timeout=0.2)
        with pytest.raises(ModelError) as failed:
            await model.complete(HI)
        assert pool_of(model).open_count == 0
        await model.aclose()
    assert type(failed.value.__cause__) is openai.APITimeoutError
    assert isinstance(failed.value.__cause__.__cause__, http1.ReadTimeout)


async def test_a_stream_that_stalls_part_way_breaks_and_is_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for text in ("par", "tial") if number == 1 else ("done",):
            event = b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n' % text.encode()
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        if number == 1:
            await reader.read()  # stalls: no more bytes
            return
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as server:
        model = model_at(server.url, max_attempts=2, max_retry_wait=0.0, timeout=0.3)
        pieces: list[ReplyDelta] = []
        retries: list[str] = []
        reply = await model.complete(HI, lambda a, error, w: retries.append(error), on_delta=pieces.append)
        await model.aclose()
    assert reply.content == "done" and len(retries) == 1 and "StreamBroken" in retries[0]
    assert [p.text for p in pieces if p.text] == ["par", "tial", "done"] and any(p.reset for p in pieces)


async def test_a_rate_limit_hint_reaches_the_retry_policy() -> None:
    limited = {"status": 429, "headers": {"Retry-After": "0.01"}, "body": {"error": {"message": "slow down"}}}
    async with ScriptedServer([limited, {"content": "fine"}]) as srv:
        model = model_at(srv.base_url, max_retry_wait=5.0)
        waits: list[float] = []
        errors: list[str] = []
        reply = await model.complete(HI, lambda attempt, error, wait: (waits.append(wait), errors.append(error)))
        await model.aclose()
    assert reply.content == "fine" and waits == [0.01]
    assert errors == ["HTTP 429: RateLimitError: Error code: 429 - slow down"]


async def test_the_error_carries_an_httpx_response_with_the_servers_headers_and_body() -> None:
    item = {
        "status": 503,
        "headers": {"Retry-After": "7", "X-Request-Id": "req-1"},
        "body": {"error": {"message": "x"}},
    }
    async with ScriptedServer([item]) as srv:
        url = srv.base_url + "/chat/completions"
        model = model_at(srv.base_url, max_attempts=1)
        with pytest.raises(ModelError) as failed:
            await model.complete(HI)
        await model.aclose()
    error = failed.value.__cause__
    assert isinstance(error, openai.InternalServerError)
    assert error.response.headers["retry-after"] == "7" and error.request_id == "req-1"
    assert error.response.json() == {"error": {"message": "x"}}
    assert str(error.request.url) == url


async def test_a_cancelled_request_closes_its_connection_instead_of_pooling_it() -> None:
    arrived = asyncio.Event()
    hung_up = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.request(reader)
        arrived.set()
        await reader.read()  # until the client closes its end
        hung_up.set()

    async with RawServer(handler) as server:
        model = model_at(server.url, max_attempts=1)
        asking = asyncio.ensure_future(model.complete(HI))
        await arrived.wait()
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        pool = pool_of(model)
        assert (pool.open_count, pool.idle_count) == (0, 0)
        await asyncio.wait_for(hung_up.wait(), 5)
        await model.aclose()


async def test_a_cancelled_stream_closes_its_connection_instead_of_pooling_it() -> None:
    async with ScriptedServer([{"content": "a long reply " * 20, "chunk_delay": 0.05}]) as srv:
        model = model_at(srv.base_url, max_attempts=1)
        pieces: list[ReplyDelta] = []
        asking = asyncio.ensure_future(model.complete(HI, on_delta=pieces.append))
        while not pieces:
            await asyncio.sleep(0.01)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        pool = pool_of(model)
        assert (pool.open_count, pool.idle_count) == (0, 0)
        await model.aclose()


async def test_a_proxy_in_the_environment_sends_the_requests_through_httpx_and_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scripted server plays the proxy: it answers whatever absolute URL it is asked for.
    async with ScriptedServer([{"content": "via the proxy"}]) as proxy:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        model = model_at("http://192.0.2.1:9/v1", max_attempts=1)  # unroutable: reached only via the proxy
        reply = await model.complete(HI)
        endpoint = model._endpoint_here()
        await model.aclose()
    assert reply.content == "via the proxy" and endpoint.client is None and endpoint.shards is not None
    assert len(proxy.requests) == 1


async def test_no_proxy_exempts_an_endpoint_from_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async with ScriptedServer([{"content": "direct"}]) as srv:
        monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:9")
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        model = model_at(srv.base_url, max_attempts=1)
        reply = await model.complete(HI)
        assert model._endpoint_here().client is not None
        await model.aclose()
    assert reply.content == "direct"


@pytest.mark.parametrize(
    ("environment", "url", "proxied"),
    [
        ({}, "https://api.openai.com/v1", False),
        ({"HTTPS_PROXY": "http://p:3128"}, "https://api.openai.com/v1", True),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://localhost:8000/v1", False),  # a proxy for https only
        ({"ALL_PROXY": "http://p:3128"}, "http://localhost:8000/v1", True),
        ({"all_proxy": "http://p:3128", "no_proxy": "*"}, "http://localhost:8000/v1", False),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".openai.com"}, "https://api.openai.com/v1", False),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "openai.com"}, "https://api.openai.com/v1", False),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "openai.com"}, "https://notopenai.com/v1", True),
        ({"HTTP_PROXY": "http://p:3128", "NO_PROXY": "localhost:8000"}, "http://localhost:8000/v1", False),
        ({"HTTP_PROXY": "http://p:3128", "NO_PROXY": "localhost:9000"}, "http://localhost:8000/v1", True),
    ],
)
def test_which_urls_the_environment_sends_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str, proxied: bool
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert uses_proxy(url) is proxied


async def test_a_307_is_followed_with_the_same_body_and_no_key_goes_to_another_origin() -> None:
    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        request = await other.request(reader)
        assert request is not None
        writer.write(reply_bytes(completion("moved " + json.loads(request[1])["messages"][0]["content"])))
        await writer.drain()

    async def moving(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while request := await server.request(reader):
            if b"/v2/" in request[0].split(b"\r\n")[0]:  # the same origin: the key is still sent
                writer.write(reply_bytes(b"", status="307 Temporary Redirect", extra=f"Location: {other.url}/x\r\n"))
            else:
                writer.write(reply_bytes(b"", status="308 Permanent Redirect", extra="Location: /v2/chat\r\n"))
            await writer.drain()

    async with RawServer(elsewhere) as other, RawServer(moving) as server:
        model = model_at(server.url, max_attempts=1)
        reply = await model.complete(HI)
        await model.aclose()
    assert reply.content == "moved hi"
    assert [b"authorization: bearer k" in head.lower() for head in server.heads + other.heads] == [True, True, False]


async def test_a_301_of_a_post_is_an_error_that_says_where_and_why() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while await server.request(reader):
            writer.write(reply_bytes(b"", status="301 Moved Permanently", extra="Location: https://new.example/v1\r\n"))
            await writer.drain()

    async with RawServer(handler) as server:
        model = model_at(server.url, max_attempts=1)
        with pytest.raises(ModelError, match=r"redirected to https://new\.example/v1.*set base_url") as failed:
            await model.complete(HI)
        await model.aclose()
    assert type(failed.value.__cause__) is openai.APIStatusError


async def test_replies_framed_by_closing_or_compressed_are_read_and_never_pooled_when_closed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.request(reader)
        if number == 1:  # no length, no chunks: the body ends with the connection
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + completion("to the end"))
        elif number == 2:  # compressed although the client asked for identity, and `Connection: close`
            writer.write(
                reply_bytes(
                    gzip.compress(completion("unzipped")), extra="Content-Encoding: gzip\r\nConnection: close\r\n"
                )
            )
        await writer.drain()

    async with RawServer(handler) as server:
        model = model_at(server.url, max_attempts=1)
        first = await model.complete(HI)
        assert pool_of(model).open_count == 0
        second = await model.complete(HI)
        assert pool_of(model).open_count == 0
        await model.aclose()
    assert (first.content, second.content) == ("to the end", "unzipped")
    assert b"accept-encoding: identity" in server.heads[0].lower()


async def test_the_window_look_up_goes_through_the_same_client() -> None:
    async with ScriptedServer([], model_info={"max_model_len": 4096}) as srv:
        model = model_at(srv.base_url)
        assert await model.context_window() == 4096
        await model.aclose()


async def test_a_header_that_would_break_the_framing_is_refused() -> None:
    with pytest.raises(ValueError, match="breaks the HTTP framing"):
        http1.Client({"X-Evil": "a\r\nInjected: yes"}, 1.0, tls_context, "http://127.0.0.1/v1")


async def test_closing_the_endpoint_closes_connections_in_use_too() -> None:
    async with ScriptedServer([{"content": "slow", "delay": 5.0}]) as srv:
        endpoint = Endpoint(srv.base_url, "k", 10.0)
        assert endpoint.client is not None
        asking = asyncio.ensure_future(
            endpoint.post_chat(endpoint.client, b'{"model":"m","messages":[]}', stream=False)
        )
        while endpoint.client.pool.open_count == 0:
            await asyncio.sleep(0.01)
        await endpoint.aclose()
        with pytest.raises(openai.APIConnectionError):
            await asking
        assert endpoint.client.pool.open_count == 0
