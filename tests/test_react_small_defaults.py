"""ReAct's defaults for a small local model (`StrategyContext.small_model`): a tool call before any answer,
no thought field, the task restated after observations, and a numeric answer copied from them; any model
else keeps ReAct as it was, and each option set explicitly wins."""

from __future__ import annotations

import json
from typing import Any

from agentlab.decisions import ToolCall
from agentlab.models.base import ModelRequest, ModelResponse
from agentlab.strategies.base import Observation, StrategyContext
from agentlab.strategies.critic import Critic
from agentlab.strategies.react import RESTATED, ReAct
from agentlab.tools import ToolRegistry, calculator
from agentlab.tools.output import ToolOutput

NUMBER = {"type": "object", "properties": {"answer": {"type": "number"}}, "required": ["answer"]}
TASK = "What is 57 + 35 * 6?"


def _started(small: bool, **options: Any) -> ReAct:
    react = ReAct(**options)
    react.start(
        StrategyContext(TASK, ToolRegistry([calculator]), "json_schema", output_schema=NUMBER, small_model=small)
    )
    return react


def _actions(request: ModelRequest) -> list[str]:
    action = request.response_schema["properties"]["action"]
    return [v["properties"]["name"]["const"] for v in action.get("anyOf", [action])]


def _observe(react: ReAct, output: str) -> None:
    call = ToolCall("step1", "calculator", {"expression": "57 + 35 * 6"})
    react.observe([Observation(call, ToolOutput(ok=True, content=output))])


def test_a_small_model_must_call_a_tool_first_without_a_thought_then_answers_with_an_observed_number():
    react = _started(small=True)
    first = react.next_step()
    assert isinstance(first, ModelRequest)
    assert _actions(first) == ["calculator"] and "thought" not in first.response_schema["properties"]
    assert '"thought"' not in first.messages[0]["content"]
    _observe(react, "267")
    second = react.next_step()
    assert second.messages[-1]["content"] == "Observation: 267\n" + RESTATED.format(task=TASK)
    final = next(v for v in second.response_schema["properties"]["action"]["anyOf"] if "answer" in str(v))
    assert final["properties"]["arguments"]["properties"]["answer"]["enum"] == [267]


def test_other_models_keep_react_as_it_was_and_explicit_options_win():
    react = _started(small=False)
    first = react.next_step()
    assert _actions(first) == ["calculator", "final_answer"] and "thought" in first.response_schema["properties"]
    _observe(react, "267")
    assert react.next_step().messages[-1]["content"] == "Observation: 267"
    explicit = _started(small=True, min_tool_calls=0, thoughts=True, restate_task=False, answer_from_observations=False)
    request = explicit.next_step()
    assert _actions(request) == ["calculator", "final_answer"] and "thought" in request.response_schema["properties"]
    _observe(explicit, "267")
    assert "enum" not in str(explicit.next_step().response_schema)


def _reply(name: str, **arguments: Any) -> ModelResponse:
    return ModelResponse(json.dumps({"action": {"name": name, "arguments": arguments}}))


def test_a_small_models_verifier_gets_reacts_small_model_defaults_too():
    # CRITIC's verifier is a ReAct role inside the run: on a small model it must check with a tool before it
    # reports, and its first calculation is copied from the task it verifies (grounded arguments).
    task = "What is (110 + 161) * 4 - 2?"
    critic = Critic()
    critic.start(StrategyContext(task, ToolRegistry([calculator]), "json_schema", small_model=True))
    assert isinstance(critic.next_step(), ModelRequest)  # the draft, by the inner ReAct
    decision = critic.interpret(_reply("calculator", expression="(110 + 161) * 4 - 2"))
    critic.observe([Observation(decision.tool_calls[0], ToolOutput(ok=True, content="1082"))])
    assert isinstance(critic.next_step(), ModelRequest)
    critic.interpret(_reply("final_answer", answer=1082))
    verify = critic.next_step()
    assert isinstance(verify, ModelRequest) and "Verify this answer" in verify.messages[-1]["content"]
    assert _actions(verify) == ["calculator"] and "thought" not in verify.response_schema["properties"]
    calculator_call = verify.response_schema["properties"]["action"]
    assert calculator_call["properties"]["arguments"]["properties"]["expression"]["enum"] == ["(110 + 161) * 4 - 2"]


def test_a_role_inside_a_run_keeps_the_runs_tools_guidance_and_model_size_but_not_its_conversation():
    context = StrategyContext(
        TASK,
        ToolRegistry([calculator]),
        "tools",
        instructions="Be brief.",
        max_steps=9,
        history=[{"role": "user", "content": "hi"}],
        output_schema=NUMBER,
        small_model=True,
    )
    role = context.for_role("Check 267.")
    assert (role.task, role.tools, role.decision_format, role.instructions) == (
        "Check 267.",
        context.tools,
        "tools",
        "Be brief.",
    )
    assert role.small_model and (role.history, role.output_schema, role.max_steps) == ([], None, None)
    assert context.task == TASK and context.history  # the run's own context is left as it was


def test_a_roles_next_request_becomes_its_task_and_needs_its_own_tool_call():
    # CRITIC's verifier verifies a revised answer, CAMEL's assistant solves a new instruction: a small model
    # is reminded of that request (not the first one) and must check it with a tool again.
    from agentlab.strategies.dialogue import ToolDialogue

    role = ToolDialogue()
    role.start(StrategyContext("Check 57 + 35 * 6 = 267.", ToolRegistry([calculator]), "json_schema", small_model=True))
    assert _actions(role.next_step()) == ["calculator"]
    _observe(role, "267")
    assert "final_answer" in _actions(role.next_step())
    role.settle("267 is right.")
    role.say("Check 57 + 35 * 7 = 302.")
    assert _actions(role.next_step()) == ["calculator"]  # the new request gets its own check
    _observe(role, "302")
    after = role.next_step()
    assert after.messages[-1]["content"] == "Observation: 302\n" + RESTATED.format(task="Check 57 + 35 * 7 = 302.")


def _camel_instructed(small: bool) -> Any:
    """A CAMEL role-play (no task specifier) whose AI user has given its first instruction."""
    from agentlab.strategies.camel import Camel

    camel = Camel(specify=False)
    camel.start(StrategyContext("Write a slogan.", ToolRegistry([calculator]), "json_schema", small_model=small))
    assert isinstance(camel.next_step(), ModelRequest)  # the AI user's first instruction
    camel.interpret(ModelResponse(json.dumps({"instruction": "Instruction: write the slogan."})))
    return camel


def test_camels_assistant_on_a_small_model_uses_tools_when_they_help_not_before_every_solution():
    camel = _camel_instructed(small=True)
    solve = camel.next_step()
    assert isinstance(solve, ModelRequest) and "final_answer" in _actions(solve)
    assert "thought" in solve.response_schema["properties"]  # a turn of the role-play, written after a thought


def _camel_after_a_solution(small: bool) -> Any:
    camel = _camel_instructed(small)
    camel.next_step()
    camel.interpret(_reply("final_answer", answer="Fresh"))
    return camel


def test_camels_user_on_a_small_model_says_whether_the_task_is_done_instead_of_writing_the_token():
    from agentlab.strategies.base import Conclusion

    # SmolLM2's AI user never wrote the termination token: it repeated the task until the run stalled.
    camel = _camel_after_a_solution(small=True)
    review = camel.next_step()
    assert isinstance(review, ModelRequest) and list(review.response_schema["properties"]) == [
        "task_done",
        "instruction",
    ]
    camel.interpret(ModelResponse(json.dumps({"task_done": False, "instruction": "Make it rhyme."})))
    assert camel.phase == "assistant" and camel.assistant.context.asked == "Make it rhyme."  # the next instruction
    camel.next_step()
    camel.interpret(_reply("final_answer", answer="Fresh bread, well fed"))
    camel.next_step()
    decision = camel.interpret(ModelResponse(json.dumps({"task_done": True, "instruction": ""})))
    assert decision.final_answer == "Fresh bread, well fed"
    assert camel.next_step() == Conclusion("Fresh bread, well fed")
    # Any other model keeps the instruction shape, and ends the role-play with the token.
    other = _camel_after_a_solution(small=False).next_step()
    assert isinstance(other, ModelRequest) and list(other.response_schema["properties"]) == ["instruction"]


def test_babyagis_executor_on_a_small_model_searches_for_its_task_not_its_whole_prompt(tmp_path: Any):
    from typing import Annotated

    from agentlab.strategies.babyagi import BabyAGI
    from agentlab.tools import grounded, tool

    @tool
    def search(query: Annotated[str, grounded()]) -> str:
        """Search the web."""
        return query

    babyagi = BabyAGI(store=tmp_path / "tasks.sqlite", first_task="Find the tallest mountain in Japan")
    babyagi.start(StrategyContext("Plan a trip to Japan", ToolRegistry([search]), "json_schema", small_model=True))
    first = babyagi.next_step()  # the executor's first step on the first task
    assert isinstance(first, ModelRequest) and "Objective: Plan a trip to Japan" in first.messages[-1]["content"]
    call = first.response_schema["properties"]["action"]
    assert call["properties"]["arguments"]["properties"]["query"]["enum"] == ["Find the tallest mountain in Japan"]
    # The default first task is a plan for the objective: it searches for the objective.
    planner = BabyAGI(store=tmp_path / "plans.sqlite")
    planner.start(StrategyContext("Plan a trip to Japan", ToolRegistry([search]), "json_schema", small_model=True))
    plan = planner.next_step()
    assert isinstance(plan, ModelRequest) and "Your task: Make a short plan" in plan.messages[-1]["content"]
    query = plan.response_schema["properties"]["action"]["properties"]["arguments"]["properties"]["query"]
    assert query["enum"] == ["Plan a trip to Japan"]
