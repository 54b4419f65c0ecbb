"""`OpenAIModel`: any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, Ollama, LM Studio)."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

from agentlab._redact import redact, secret_values
from agentlab._text import scrub, scrub_data
from agentlab.events import Usage
from agentlab.models.base import (
    Capabilities,
    DecisionFormat,
    DeltaCallback,
    ModelError,
    ModelRequest,
    ModelResponse,
    RawToolCall,
    ReplyDelta,
    RetryCallback,
    SchemaDialect,
)
from agentlab.models.wire import BodyEncoder, Endpoint

T = TypeVar("T")

PROBE_NAME = "agentlab_probe"
WINDOW_TIMEOUT = 10.0  # seconds for each context-window look-up: it is optional and must not hold a run up
_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


class OpenAIModel:
    """A chat model behind an OpenAI-compatible HTTP API. The official `openai` client resolves the base URL,
    key and headers, and its error classes are what failures raise; the requests themselves go through
    agentlab's own HTTP client (`wire.Endpoint`: `http1`, or httpx behind a proxy), skipping the client's
    per-call work.

    Retries (429, 5xx, timeouts, connection errors) are ours, not the client's, so they are bounded,
    honour Retry-After and can be reported as events.

    Args:
        model: The model name the endpoint knows.
        base_url: The API's base URL (ending in `/v1`); OpenAI's when None.
        api_key: The key; never shown in `repr` or traces.
        decision_format: `"tools"`, `"json_schema"` or `"json"`; None probes the endpoint once.
        schema_dialect: `"json_schema"` (OpenAI) or `"json_object"` (llama.cpp's server); None probes.
        timeout: Seconds per HTTP request.
        max_attempts: Attempts per call, retries of 429/5xx/timeouts included.
        max_retry_wait: The longest wait between attempts, in seconds.
        temperature: Default sampling temperature (None: the server's).
        max_tokens: Default completion token limit.
        extra_body: Extra JSON fields sent with every request.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        decision_format: DecisionFormat | None = None,
        schema_dialect: SchemaDialect | None = None,
        timeout: float = 120.0,
        max_attempts: int = 4,
        max_retry_wait: float = 20.0,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.name = model
        self.base_url = base_url
        self._api_key = api_key
        self.decision_format = decision_format
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.max_retry_wait = max_retry_wait
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = extra_body or {}
        self.schema_dialect: SchemaDialect = schema_dialect or "json_schema"  # probing may change it
        self._capabilities: Capabilities | None = None
        # Single-flight probing: the probe in progress on each event loop, and who wants its retries reported.
        self._probing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[Capabilities]] = (
            weakref.WeakKeyDictionary()
        )
        self._probe_listeners: list[RetryCallback] = []
        # The context window the endpoint advertises: learned once (None when it says nothing), single-flight.
        self._window: int | None = None
        self._window_known = False
        self._window_asking: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[int | None]] = (
            weakref.WeakKeyDictionary()
        )
        # connection pools belong to one event loop; sync wrappers create fresh loops.
        self._endpoints: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Endpoint] = weakref.WeakKeyDictionary()
        self._encoder = BodyEncoder()  # the conversation only grows: each message is encoded once

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIModel(model={self.name!r}, base_url={self.base_url!r})"

    def _endpoint_here(self) -> Endpoint:
        loop = asyncio.get_running_loop()
        endpoint = self._endpoints.get(loop)
        if endpoint is None:
            endpoint = Endpoint(self.base_url, self._api_key or "not-needed", self.timeout)
            self._endpoints[loop] = endpoint
        return endpoint

    async def aclose(self) -> None:
        """Close this event loop's HTTP clients (others close with their loops)."""
        endpoint = self._endpoints.pop(asyncio.get_running_loop(), None)
        if endpoint is not None:
            await endpoint.aclose()

    async def complete(
        self,
        request: ModelRequest,
        on_retry: RetryCallback | None = None,
        *,
        on_delta: DeltaCallback | None = None,
        dialect: SchemaDialect | None = None,
        max_attempts: int | None = None,
    ) -> ModelResponse:
        """Send one chat request, retrying transient failures; raise `ModelError` when it cannot be answered.

        Args:
            request: The request.
            on_retry: Called before each retry, e.g. to emit a `ModelRetry` event.
            on_delta: Stream the reply (`stream=True`) and call this with each piece as it arrives; a retry
                after pieces were handed on first calls it with a `reset` piece. The response returned is
                the same as without it.
            dialect: Override the schema dialect for this call (used by the probe).
            max_attempts: Override the number of attempts for this call.
        """
        from agentlab.models.retry import is_transient

        streamed = False  # whether the current attempt has handed pieces on

        def hand_on(delta: ReplyDelta) -> None:
            nonlocal streamed
            streamed = True
            on_delta(delta)  # type: ignore[misc]

        def before_retry(attempt: int, error: BaseException, wait: float) -> None:
            nonlocal streamed
            if on_retry is not None:
                on_retry(attempt, _describe(error, self._api_key), wait)
            if streamed:
                streamed = False
                on_delta(ReplyDelta(reset=True))  # type: ignore[misc]  # drop what it showed of the reply

        params = self._params(request, dialect or self.schema_dialect)
        attempts = max_attempts or self.max_attempts
        try:
            if on_delta is not None:
                params = {**params, "stream": True, "stream_options": {"include_usage": True}}
            body = self._encoder.encode(params)  # once per call, not per attempt
            send = partial(self._receive, body, params, hand_on if on_delta else None)
            try:  # most calls succeed at once: the retry policy is built only for one that failed
                return _to_response(await send())
            except Exception as error:
                if attempts <= 1 or not is_transient(error):
                    raise
                return _to_response(await _retried(send, error, attempts, self.max_retry_wait, before_retry))
        except Exception as error:
            raise ModelError(f"{self.name}: {_describe(error, self._api_key)}") from error

    async def _receive(self, body: bytes, params: dict[str, Any], on_delta: DeltaCallback | None) -> Any:
        """The whole reply, as a completion (plain JSON). With `on_delta` it is streamed, each piece handed on
        as it arrives, and folded back into the completion a non-streamed request returns: one reader and one
        retry policy for both (a non-streamed reply is the stream of one chunk).

        The body goes through agentlab's own HTTP client with the URL, headers and error classes of the
        `openai` client (`wire.Endpoint`); the reply is not turned into pydantic models, which agentlab would
        only read back field by field."""
        from agentlab.models.retry import MalformedReply
        from agentlab.models.wire import read_completion

        endpoint = self._endpoint_here()
        async with endpoint.lease() as client:  # held until the reply is read
            reply = await endpoint.post_chat(client, body, stream=on_delta is not None)
            if on_delta is None:
                try:
                    return read_completion(reply.content, reply.headers.get("content-type", ""))
                except ValueError as error:  # a 2xx body said to be JSON that is not (json.JSONDecodeError)
                    raise MalformedReply(f"the reply body is not JSON: {error}") from error
            try:
                return await self._read_stream(reply, params, on_delta)
            finally:
                await reply.aclose()

    async def _read_stream(self, reply: Any, params: dict[str, Any], on_delta: DeltaCallback) -> Any:
        import openai

        from agentlab.models.retry import MalformedReply
        from agentlab.models.streaming import StreamBroken, StreamedReply
        from agentlab.models.wire import is_transport_error, request_of, sse_chunks

        folded = StreamedReply()
        try:
            async for chunk in sse_chunks(reply):
                error = chunk.get("error") if isinstance(chunk, dict) else None
                if error:  # an error event in place of a chunk, as the openai client reports it
                    message = error.get("message") if isinstance(error, dict) else None
                    message = message if isinstance(message, str) and message else "An error occurred during streaming"
                    raise openai.APIError(message, request_of(reply), body=error)
                for delta in folded.add(chunk):
                    on_delta(delta)
        except ValueError as error:
            raise MalformedReply(f"a streamed chunk is not JSON: {error}") from error
        except Exception as error:
            if not is_transport_error(error):
                raise
            raise StreamBroken(f"the stream broke part-way: {type(error).__name__}: {error}") from error
        prompt_chars = sum(len(str(m.get("content") or "")) for m in params["messages"])
        return folded.completion(prompt_chars)

    def _params(self, request: ModelRequest, dialect: SchemaDialect) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.name, "messages": [_portable(m) for m in request.messages]}
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            params["temperature"] = temperature
        max_tokens = request.max_tokens or self.max_tokens
        if max_tokens:
            # `max_tokens`, not `max_completion_tokens`: some servers (llama.cpp) ignore the newer name.
            params["max_tokens"] = max_tokens
        if request.tools:
            params["tools"] = request.tools
            # Some servers (llama.cpp) silently drop `tools` unless a tool_choice is given.
            params["tool_choice"] = request.tool_choice or "auto"
        if request.response_schema is not None:
            params["response_format"] = _response_format(request, dialect)
        if self.extra_body:
            params.update(self.extra_body)  # merged into the body, as the client's `extra_body` is
        return params

    async def capabilities(self, on_retry: RetryCallback | None = None) -> Capabilities:
        """What the endpoint supports: the `decision_format` given, else probed once per model object.

        Probes are retried like any request (their retries reach `on_retry`); concurrent callers share
        one probe (single-flight); a probe that fails for good is not remembered, so a later run probes again.
        """
        if self.decision_format is not None:
            return Capabilities(
                native_tools=self.decision_format == "tools",
                json_schema=self.decision_format in ("tools", "json_schema"),
                schema_dialect=self.schema_dialect,
            )
        # Probing costs two small requests, so each model object does it once and remembers (share one
        # OpenAIModel between agents; a process-wide cache keyed by URL would outlive the server behind it).
        if self._capabilities is not None:
            return self._capabilities
        probing = _single_flight(self._probing, self._probe_capabilities)
        if on_retry is not None:
            self._probe_listeners.append(on_retry)
        try:
            return await probing
        finally:
            if on_retry is not None:
                self._probe_listeners.remove(on_retry)

    async def context_window(self) -> int | None:
        """The context window in tokens as the endpoint advertises it, or None when it does not say: vLLM's
        `max_model_len` on the model's entry in `GET /v1/models`, else llama.cpp's server `GET /props`
        (`default_generation_settings.n_ctx`, or `n_ctx`). Asked once per model object (concurrent callers
        share one look-up) and never raises: a 404, junk or an unreachable endpoint means unknown (the last
        is not remembered, so a later run asks again)."""
        if self._window_known:
            return self._window
        return await _single_flight(self._window_asking, self._ask_window)

    async def _ask_window(self) -> int | None:
        from openai import APIConnectionError

        reachable = False
        endpoint = self._endpoint_here()
        async with endpoint.lease() as client:
            for read, path in ((_window_of_models, "models"), (_window_of_props, _server_root(endpoint) + "/props")):
                try:
                    body = await endpoint.get_json(client, path, WINDOW_TIMEOUT)
                except APIConnectionError:  # no answer (timeouts included) says nothing yet: ask again next run
                    continue
                except Exception:  # an error status or a body that is not JSON: the endpoint does not say here
                    reachable = True
                    continue
                reachable = True
                window = read(body, self.name)
                if window is not None:
                    self._window, self._window_known = window, True
                    return window
        self._window_known = reachable
        return None

    async def _probe_capabilities(self) -> Capabilities:
        tools, schema = asyncio.ensure_future(self._probe_tools()), asyncio.ensure_future(self._probe_json_schema())
        try:
            native_tools, dialect = await asyncio.gather(tools, schema)
        except BaseException:
            tools.cancel()  # the other probe's answer no longer matters
            schema.cancel()
            raise
        self._capabilities = Capabilities(native_tools, dialect is not None, dialect or "json_schema")
        self.schema_dialect = self._capabilities.schema_dialect
        return self._capabilities

    def _report_probe_retry(self, attempt: int, error: str, wait: float) -> None:
        for listener in list(self._probe_listeners):
            listener(attempt, error, wait)

    async def _probe_tools(self) -> bool:
        """Native tools are worth using only if the model also sees tool results: some servers render
        no `tool` messages into the prompt (llama.cpp's chatml-function-calling). So the probe replays a
        call whose result holds a code and asks for a call that repeats it."""
        code = "7431"
        parameters = {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}, "code": {"type": "string"}},
            "required": ["ok", "code"],
        }
        tool = {
            "type": "function",
            "function": {"name": PROBE_NAME, "description": "Report a code.", "parameters": parameters},
        }
        earlier_call = {
            "id": "probe_1",
            "type": "function",
            "function": {"name": PROBE_NAME, "arguments": '{"ok": true, "code": ""}'},
        }
        request = ModelRequest(
            messages=[
                {"role": "user", "content": f"Call {PROBE_NAME}, then call it again with the code it returned."},
                {"role": "assistant", "content": "", "tool_calls": [earlier_call]},
                {"role": "tool", "tool_call_id": "probe_1", "content": f"code: {code}"},
            ],
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": PROBE_NAME}},
            max_tokens=48,
        )
        response = await self._probe(request)
        return response is not None and any(
            call.name == PROBE_NAME and code in call.arguments for call in response.tool_calls
        )

    async def _probe_json_schema(self) -> SchemaDialect | None:
        """Which `response_format` dialect constrains output here, if any: OpenAI's first, then
        llama.cpp's, tried only when the server rejected OpenAI's."""
        request = ModelRequest(
            messages=[{"role": "user", "content": 'Reply with the JSON object {"ok": true}.'}],
            response_schema=_PROBE_SCHEMA,
            schema_name=PROBE_NAME,
            max_tokens=32,
        )
        dialects: tuple[SchemaDialect, ...] = ("json_schema", "json_object")
        for dialect in dialects:
            response = await self._probe(request, dialect)
            if response is not None:
                return dialect if _is_probe_json(response) else None
        return None

    async def _probe(self, request: ModelRequest, dialect: SchemaDialect | None = None) -> ModelResponse | None:
        """The probe's reply, or None when the server rejects the request as unsupported."""
        try:
            return await self.complete(request, self._report_probe_retry, dialect=dialect)
        except ModelError as error:
            if _is_unsupported(error):
                return None
            raise


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _window_of_models(body: Any, model: str) -> int | None:
    """vLLM's `max_model_len` on this model's entry (or the only entry) of a `/v1/models` listing."""
    entries = body.get("data") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return None
    entries = [e for e in entries if isinstance(e, dict)]
    named = [e for e in entries if e.get("id") == model] or (entries if len(entries) == 1 else [])
    return _positive(named[0].get("max_model_len")) if named else None


def _window_of_props(body: Any, model: str) -> int | None:
    """llama.cpp's server: `n_ctx` of its default generation settings (older versions: at the top)."""
    if not isinstance(body, dict):
        return None
    settings = body.get("default_generation_settings")
    found = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return found or _positive(body.get("n_ctx"))


def _is_unsupported(error: ModelError) -> bool:
    """A probe that the server rejects means "not supported": a 400 or 422, or a 5xx that persisted through
    every retry (some servers answer an unknown field with a 500 each time; a passing 5xx was retried).
    Auth, rate-limit, timeout and connection failures do not: they end the probe, and the run, as errors."""
    status = getattr(error.__cause__, "status_code", None)
    return status is not None and ((400 <= status < 500 and status not in (401, 403, 408, 409, 429)) or status >= 500)


def _is_probe_json(response: ModelResponse) -> bool:
    try:
        return isinstance(json.loads(response.content or "").get("ok"), bool)
    except (ValueError, AttributeError):
        return False


def _response_format(request: ModelRequest, dialect: SchemaDialect) -> dict[str, Any]:
    if dialect == "json_object":
        return {"type": "json_object", "schema": request.response_schema}
    return {
        "type": "json_schema",
        "json_schema": {"name": request.schema_name, "schema": request.response_schema, "strict": False},
    }


def _portable(message: dict[str, Any]) -> dict[str, Any]:
    """Shape a message so the pickiest servers accept it: text content, never null or a list, and no lone
    surrogates (a tool output or an earlier reply may carry half an emoji; UTF-8 cannot encode it)."""
    content = message.get("content")
    if isinstance(content, str):
        clean = scrub(content)
        return message if clean is content else {**message, "content": clean}
    message = dict(message)
    if isinstance(content, list):
        message["content"] = scrub("".join(part.get("text", "") for part in content if isinstance(part, dict)))
    else:
        message["content"] = ""
    return message


def _field(value: Any, name: str) -> Any:
    """`value.name` or `value[name]`: the openai client builds its models without validation, so an odd
    reply can leave plain dicts, strings or None where objects were expected."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)


def _to_response(completion: Any) -> ModelResponse:
    """Read a completion leniently: what has a clear meaning is used, the rest is named in `malformed`
    (for the model to fix) or raised as MalformedReply (a server fault, retried)."""
    from agentlab.models.retry import MalformedReply

    choices = _field(completion, "choices")
    if not isinstance(choices, list) or not choices:
        shown = completion if isinstance(completion, str) else type(completion).__name__
        raise MalformedReply(f"the endpoint returned no chat completion: {str(shown)[:200]!r}")
    choice = choices[0]
    message = _field(choice, "message")
    if message is None or isinstance(message, str | int | float | list):
        raise MalformedReply(f"the endpoint returned a choice without a message: {str(choice)[:200]!r}")
    content, malformed = _read_content(_field(message, "content"))
    raw_calls = _field(message, "tool_calls")
    calls = [_raw_call(call, index) for index, call in enumerate(raw_calls if isinstance(raw_calls, list) else [])]
    usage = _field(completion, "usage")
    finish = _field(choice, "finish_reason")
    return ModelResponse(
        content=content,
        tool_calls=calls,
        usage=Usage(_count(_field(usage, "prompt_tokens")), _count(_field(usage, "completion_tokens"))),
        finish_reason=finish if isinstance(finish, str) else None,
        malformed=malformed,
    )


def _read_content(content: Any) -> tuple[str | None, str | None]:
    """(text, problem): text as is, a list of text parts joined, anything else a problem to report."""
    if content is None or isinstance(content, str):
        return (scrub(content) if content else content), None
    if isinstance(content, list):
        texts = [_part_text(part) for part in content]
        if all(text is not None for text in texts):
            return scrub("".join(t for t in texts if t)), None
        return None, "Your reply's content had parts that are not text. Reply with text only."
    return None, f"Your reply's content was a JSON {type(content).__name__}, not text. Reply with text only."


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
        return str(part["text"])
    return None


def _raw_call(call: Any, index: int) -> RawToolCall:
    """One tool call; object arguments are used as they are, a missing name stays empty (the decision
    reader rejects it so the model can repair it)."""
    function = _field(call, "function")
    name = _field(function, "name")
    arguments = _field(function, "arguments")
    if arguments is None:
        arguments = ""
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments)  # an object (or, wrongly, another JSON value) sent unencoded
    call_id = _field(call, "id")
    return RawToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        name=scrub(name) if isinstance(name, str) else "",
        arguments=_scrub_json(scrub(arguments)),
    )


def _scrub_json(text: str) -> str:
    """JSON text whose escapes (`\\ud83d`) would decode to a lone surrogate, re-encoded without it."""
    if "\\ud" not in text.lower():
        return text
    try:
        value = json.loads(text, strict=False)
    except ValueError:
        return text  # malformed arguments are the decision reader's to report
    return json.dumps(scrub_data(value), ensure_ascii=False)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _single_flight(
    running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[T]],
    start: Callable[[], Coroutine[Any, Any, T]],
) -> asyncio.Future[T]:
    """The one task `start()` runs for this event loop, started by the first caller and shared by those who
    come while it runs (a model object may serve several loops: a task belongs to one). Shielded: a caller
    cancelled by its own deadline must not cancel what the others await."""
    loop = asyncio.get_running_loop()
    task = running.get(loop)
    if task is None:
        task = running[loop] = loop.create_task(start())
        task.add_done_callback(partial(_forget, running, loop))
    return asyncio.shield(task)


def _forget(
    running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[T]],
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[T],
) -> None:
    """A finished task is not shared any more (a failed one is asked again next time)."""
    running.pop(loop, None)
    if not task.cancelled():
        task.exception()  # retrieved here: every caller may have left (deadlines) before it failed


async def _retried(
    send: Callable[[], Awaitable[Any]],
    failure: BaseException,
    attempts: int,
    max_wait: float,
    before_retry: Callable[[int, BaseException, float], None],
) -> Any:
    """`send()` retried with tenacity after its first attempt failed with `failure` (transient): the first
    round re-raises that failure, so tenacity counts it as attempt 1 and waits before attempt 2 as before
    any other (Retry-After first, else backoff with jitter, at most `max_wait`)."""
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

    from agentlab.models.retry import BackoffWait, is_transient

    def before_sleep(state: Any) -> None:
        if state.outcome is not None:
            wait = state.next_action.sleep if state.next_action else 0.0
            before_retry(state.attempt_number, state.outcome.exception(), wait)

    first: BaseException | None = failure
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=BackoffWait(maximum=max_wait),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            if first is not None:
                error, first = first, None
                raise error
            return await send()
    raise AssertionError("unreachable: tenacity re-raises the last failure")


def _describe(error: BaseException | None, api_key: str | None) -> str:
    """One line for the run's error and retry events, without the key: a server may echo it back ("Incorrect
    API key provided: sk-..."), and the line reaches the app's users (a web page showing `result.error`)."""
    if error is None:
        return "unknown error"
    status = getattr(error, "status_code", None)
    prefix = f"HTTP {status}: " if status else ""
    text = f"{prefix}{type(error).__name__}: {str(error)[:300]}"
    keys = [api_key] if api_key and len(api_key) >= 8 else []  # a short "not-needed" key is no secret
    return redact(text, [*keys, *secret_values()])


def _server_root(endpoint: Endpoint) -> str:
    """The server's root URL (llama.cpp serves `/props` beside `/v1`, not under it)."""
    base = endpoint.base_url
    return base[: -len("/v1")] if base.endswith("/v1") else base
