"""The small-model options on the real embedded model (SmolLM2-135M): budgeted grammars, typed numeric
answers, demonstrations and grounded answers. The model is weak, so these assert the mechanics (JSON that
closes, numbers that parse, what reaches the prompt), not that the answers are right."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from agentlab.decisions import decision_schema
from agentlab.models.base import ModelRequest
from agentlab.tools import ToolRegistry, calculator

pytestmark = pytest.mark.integration


def test_a_reply_cut_short_by_a_tiny_token_limit_still_closes_its_json(local_model):
    request = ModelRequest(
        messages=[{"role": "user", "content": "Explain at length how to compute (37 - 112) * 6 + 15."}],
        response_schema=decision_schema(ToolRegistry([calculator])),
        max_tokens=8,
    )
    reply = asyncio.run(local_model.complete(request))
    decision = json.loads(reply.content)  # would raise on JSON cut off inside the structure
    assert decision["action"]["name"] in ("calculator", "final_answer")
    assert "{" not in decision["thought"] and "\n" not in decision["thought"]


def test_a_list_with_no_bound_of_its_own_still_closes_on_the_embedded_model(local_model):
    # BabyAGI's priorities: unbounded, SmolLM2 counted 1, 2, 3, ... until the token limit cut the reply off.
    order = {"type": "object", "properties": {"order": {"type": "array", "items": {"type": "integer"}}}}
    request = ModelRequest(
        messages=[{"role": "user", "content": "List every number from 1 to 500 as the order."}],
        response_schema={**order, "required": ["order"]},
        max_tokens=120,
    )
    reply = asyncio.run(local_model.complete(request))
    assert all(isinstance(n, int) for n in json.loads(reply.content)["order"])  # closed, whatever its length


QUESTIONS = [f"What is {a} {op} {b}?" for a, op, b in [(12, "+", 30), (7, "*", 8), (100, "-", 37), (9, "*", 9)]] + [
    "How many legs do 3 spiders have?",
    "A box holds 6 eggs. How many eggs are in 4 boxes?",
    "What is half of 50?",
    "Tom had 20 apples and ate 3. How many are left?",
    "What is 15% of 200?",
    "How many minutes are in 2 hours?",
    "What is the square root of 81?",
    "A pen costs $2. How much do 7 pens cost?",
    "What is 1000 divided by 8?",
    "How many days are in 3 weeks?",
    "What is 2 to the power of 10?",
    "If a train goes 60 km per hour, how far does it go in 3 hours?",
    "What is 45 + 55?",
    "What is 17 times 3?",
    "How many sides do 5 triangles have in total?",
    "What is 999 + 1?",
]


def test_typed_numeric_answers_always_parse(local_model):
    from agentlab import Agent

    agent = Agent(model=local_model, tools=[calculator], output_type=float, max_steps=3)
    for question in QUESTIONS:
        result = agent.run(question)
        assert result.status in ("done", "max_steps"), (question, result.error)
        if result.status == "done":
            assert isinstance(result.output, float), (question, result.answer)
            float(result.answer)  # the text form is the number too


class Recording:
    """The embedded model, with the requests it was sent kept for the test to read."""

    def __init__(self, model):
        self.model, self.name, self.requests = model, model.name, []

    async def capabilities(self):
        return await self.model.capabilities()

    async def complete(self, request, on_retry=None):
        self.requests.append(request)
        return await self.model.complete(request, on_retry)


def test_built_in_demos_reach_the_first_request_on_the_embedded_model(local_model):
    from agentlab import Agent
    from agentlab.demos import PREAMBLE, builtin_library

    recording = Recording(local_model)
    result = Agent(model=recording, tools=[calculator], demos=builtin_library(), max_steps=2).run("What is 48 + 17?")
    system = recording.requests[0].messages[0]["content"]
    assert PREAMBLE in system and '"name": "calculator"' in system
    assert result.status in ("done", "max_steps") and "parse_error" not in [e.kind for e in result.events]
    assert Agent(model=local_model, tools=[calculator]).demos is builtin_library()  # the default for this model


def test_react_on_the_embedded_model_calls_the_calculator_first_and_answers_with_what_it_returned(local_model):
    from agentlab import Agent
    from agentlab import events as ev
    from agentlab.strategies.grounding import candidate_numbers, task_expressions
    from agentlab.tools.builtin.arithmetic import EXPRESSION_PATTERN

    agent = Agent(model=local_model, tools=[calculator], output_type=float, max_steps=4)
    for question in ["What is (46 + 163) + 103?", "What is 57 + 35 * 6?", "How many legs do 3 spiders have?"]:
        result = agent.run(question)
        kinds = [e.kind for e in result.events]
        assert result.status == "done", (question, result.error)
        # The small-model defaults: no answer before a tool call, and the answer is a number the tools returned.
        assert "tool_started" in kinds and kinds.index("tool_started") < kinds.index("final"), question
        # Every expression has the calculator's shape (the grammar compiled and held): no list, no debris.
        expressions = [e.call.arguments["expression"] for e in result.events if isinstance(e, ev.ToolStarted)]
        assert all(re.fullmatch(EXPRESSION_PATTERN, text) for text in expressions), expressions
        # A calculation the task writes out is copied into the first call, not retyped (grounded arguments).
        written = task_expressions(question, EXPRESSION_PATTERN)
        assert expressions[0] in written if written else question.startswith("How many"), (question, expressions)
        numbers = candidate_numbers([e.output for e in result.events if isinstance(e, ev.ToolResult) and e.ok])
        if numbers:  # (a call the calculator refused returns no number to copy; then the answer is free)
            assert result.output in numbers, (question, result.output, numbers)


def test_pal_on_the_embedded_model_writes_programs_of_the_shaped_grammar(local_model):
    from agentlab import Agent
    from agentlab import events as ev
    from agentlab.strategies.pal import SMALL_PROGRAM_SCHEMA

    pattern = SMALL_PROGRAM_SCHEMA["properties"]["program"]["pattern"]
    agent = Agent(model=local_model, strategy="pal", output_type=float, max_steps=4)
    result = agent.run("A baker makes 12 cakes a day for 5 days and sells 41 of them. How many cakes are left?")
    programs = [e.call.arguments["program"] for e in result.events if isinstance(e, ev.ToolStarted)]
    # Every reply parsed and is a function of assignments and a return (the model's arithmetic may be wrong).
    assert programs and not [e for e in result.events if isinstance(e, ev.ParseError)], result.error
    assert all(re.fullmatch(pattern, program) for program in programs), programs


def test_a_pal_repair_on_the_embedded_model_keeps_the_programs_names_in_scope(local_model):
    from agentlab.models.base import ModelResponse
    from agentlab.strategies.base import Observation, StrategyContext
    from agentlab.strategies.pal import PAL
    from agentlab.tools.output import ToolOutput

    pal = PAL()
    task = "Tom has 7 apples and eats 3. How many are left?"
    pal.start(StrategyContext(task, ToolRegistry([]), "json_schema", small_model=True))
    # A program SmolLM2 could have written: a name used before it is assigned.
    failed = "def solution():\n    eaten = apples - 3\n    apples = 7\n    return apples - eaten"
    decision = pal.interpret(ModelResponse(content=json.dumps({"program": failed})))
    error = "Error: CodeError: UnboundLocalError: cannot access local variable 'apples'"
    pal.observe([Observation(decision.tool_calls[0], ToolOutput(ok=False, content=error))])
    request = pal.next_step()
    reply = asyncio.run(local_model.complete(request))
    program = json.loads(reply.content, strict=False)["program"]
    # The repair's grammar compiled and held: the same names in order, each used only once assigned.
    assert re.fullmatch(request.response_schema["properties"]["program"]["pattern"], program), program
    assert [line.split(" = ")[0].strip() for line in program.splitlines()[1:-1]] == ["eaten", "apples"]
    compile(program, "<repair>", "exec")


def test_search_queries_and_answers_on_the_embedded_model_are_grounded_in_the_run(local_model):
    from agentlab import Agent
    from agentlab import events as ev
    from agentlab.strategies.grounding import answer_phrases, grounded_queries
    from agentlab.tools import LocalCorpus, search_tools
    from agentlab.tools.builtin.corpus import Passage

    corpus = LocalCorpus(
        passages=[
            Passage("Wolf and Sheep", "Wolf and Sheep is a drama film by Shahrbanoo Sadat."),
            Passage("Shahrbanoo Sadat", "Shahrbanoo Sadat is a film director born in Tehran in 1990."),
            Passage("Tehran", "Tehran is the capital of Iran."),
        ]
    )
    agent = Agent(model=local_model, tools=search_tools(corpus), answer_from_observations="phrases", max_steps=4)
    for task in ["Who directed Wolf and Sheep?", "In what city was the director of Wolf and Sheep born?"]:
        result = agent.run(task)
        assert result.status == "done", (task, result.error)
        observed: list[str] = []
        written: list[str] = []  # the model's own (ungrounded) arguments, which are not answers
        for event in result.events:
            if isinstance(event, ev.ToolStarted):  # every query or title is one the run held at that step
                arguments = dict(event.call.arguments)
                value = arguments.pop("query", None) or arguments.pop("title")
                assert value in grounded_queries(task, observed), (task, value, observed)
                written += [str(other) for other in arguments.values()]
            elif isinstance(event, ev.ToolResult) and event.ok:
                observed.append(event.output)
        assert observed and result.answer in answer_phrases(observed, task, written=written), (task, result.answer)
