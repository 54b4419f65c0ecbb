"""Grounded answers (ReAct's `answer_from_observations`): once tools returned text, a plain-text final answer
is constrained to one of the observed sentences, in the decision grammar and in the native tool schema."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field
from toolbox import call, decide, model_for

from agentlab import Agent, tool
from agentlab.events import ToolResult
from agentlab.strategies.grounding import (
    answer_phrases,
    candidate_numbers,
    candidate_phrases,
    candidate_sentences,
    candidate_spans,
    grounded_queries,
    grounded_tool_parameters,
    task_expressions,
)
from agentlab.testing import ScriptedServer
from agentlab.tools import calculator, grounded, search_tools
from agentlab.tools.builtin.arithmetic import EXPRESSION_PATTERN
from agentlab.tools.builtin.corpus import LocalCorpus, Passage

PAGE = "# Eiffel Tower\nThe Eiffel Tower is a lattice tower in Paris. It was completed in 1889.\n\nNo more."


@tool
def lookup(title: str) -> str:
    """Read a page.

    Args:
        title: The page title.
    """
    return PAGE


@tool
def numbers_page(title: str) -> str:
    """Read a page with numbers.

    Args:
        title: The page title.
    """
    return "It had 1,300 rivets, 7.5 tonnes of paint and a tag B52; it lost -12 in 1889."


def _final_variant(schema: dict[str, Any]) -> dict[str, Any]:
    action = schema["properties"]["action"]
    variants = action.get("anyOf", [action])
    return next(v for v in variants if v["properties"]["name"]["const"] == "final_answer")


def test_observed_sentences_become_the_only_answers_in_the_decision_schema():
    script = [
        decide("lookup", "I read the page.", title="Eiffel Tower"),
        decide("final_answer", answer="It was completed in 1889."),
    ]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        agent = Agent(model=model_for(srv), tools=[lookup], answer_from_observations=True)
        result = agent.run("When was the Eiffel Tower completed?")
        first, second = (r["response_format"]["json_schema"]["schema"] for r in srv.requests)
    assert result.status == "done" and result.answer == "It was completed in 1889."
    assert "enum" not in str(_final_variant(first))  # nothing observed yet: a free answer
    answer = _final_variant(second)["properties"]["arguments"]["properties"]["answer"]
    # The title the model asked for is its own text, not an observation: it is not an answer.
    assert answer["enum"][:2] == ["The Eiffel Tower is a lattice tower in Paris.", "It was completed in 1889."]


def _final_tool(request: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in request["tools"] if t["function"]["name"] == "final_answer")["function"]["parameters"]


def test_native_tools_get_the_grounded_final_answer_tool_and_other_typed_outputs_are_left_alone():
    with ScriptedServer([call("lookup", title="Eiffel Tower"), call("final_answer", answer="No more.")]) as srv:
        Agent(model=model_for(srv), tools=[lookup], answer_from_observations=True).run("When?")
        final = _final_tool(srv.requests[1])
    assert "It was completed in 1889." in final["properties"]["answer"]["enum"]
    script = [call("lookup", title="Eiffel Tower"), call("final_answer", answer=True)]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[lookup], output_type=bool, answer_from_observations=True).run(
            "Is it done?"
        )
        final = _final_tool(srv.requests[1])
    assert result.output is True and "enum" not in str(final)


def test_a_numeric_answer_is_one_of_the_observed_numbers():
    script = [decide("numbers_page", "I read it.", title="x"), decide("final_answer", answer=1889)]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        result = Agent(model=model_for(srv), tools=[numbers_page], output_type=int, answer_from_observations=True).run(
            "When?"
        )
        first, second = (r["response_format"]["json_schema"]["schema"] for r in srv.requests)
    assert result.output == 1889
    assert "enum" not in str(_final_variant(first))
    answer = _final_variant(second)["properties"]["arguments"]["properties"]["answer"]
    # Whole numbers only for an int answer, latest first; the float and the number inside a word are not.
    assert answer["type"] == "integer" and answer["enum"] == [1889, -12, 1300]


def test_candidate_numbers():
    assert candidate_numbers(["1,300 and -12", "7.5 then 1889"]) == [1889, 7.5, -12, 1300]
    assert candidate_numbers(["A4 paper, v2.1, 3e2", "Error: 5"]) == [300.0]
    assert candidate_numbers(["7.5 and 2"], integers=True) == [2]


def test_candidate_spans_are_clean_sentences_latest_first():
    spans = candidate_spans(["[1] Old\nOld news … ", "Error: nothing", PAGE])
    assert spans[0] == "Eiffel Tower" and "Old news" in spans and not any(s.startswith("Error") for s in spans)
    assert all("\n" not in s and not s.startswith(("#", "[")) for s in spans)
    # A tool saying it found nothing holds no answer, not even its advice.
    assert candidate_spans(['No page titled "x". Try {local_search} first.', "Error: no such tool."]) == []
    echo = "Made up. By the model. Try local_search first."  # a tool echoing the model's own words
    assert candidate_spans([echo], written=["Made up. By the model"]) == ["Try local_search first."]
    assert len(candidate_spans([f"A sentence number {n}." for n in range(100)], limit=5)) == 5


def test_sentence_answers_are_whole_sentences_when_there_are_any():
    results = "[1] agentlab › Documentation\nagentlab is a small framework for tool-using agents. Fast.\n\n[2] Tools"
    assert candidate_sentences([results]) == ["agentlab is a small framework for tool-using agents."]
    assert candidate_sentences(["[1] Tools\nFast."]) == ["Tools", "Fast."]  # no sentence: every span
    # A tool's whole result can be one character (`add(2, 3)` returns "5"): it is still there to copy.
    assert candidate_sentences(["5"]) == ["5"] and candidate_sentences(["7", "x"]) == ["x", "7"]


def test_phrases_are_names_dates_and_titles_of_the_observations():
    observed = "[1] Tower Company\nIt was built on 10 January 1920 in Bath, Maine by Jonny Craig. The Tower had 1,300."
    phrases = candidate_phrases([observed])
    assert phrases[:2] == ["Tower Company", "10 January 1920"]
    assert {"Bath, Maine", "Jonny Craig", "Tower", "1,300"} <= set(phrases) and "It" not in phrases
    script = [decide("lookup", "I read the page.", title="x"), decide("final_answer", answer="1889")]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        Agent(model=model_for(srv), tools=[lookup], answer_from_observations="phrases").run("What is it?")
        second = srv.requests[1]["response_format"]["json_schema"]["schema"]
    assert _final_variant(second)["properties"]["arguments"]["properties"]["answer"]["enum"][:3] == [
        "Eiffel Tower",
        "Paris",
        "1889",
    ]


def test_phrases_the_question_names_are_left_out_unless_it_offers_them_as_choices():
    observed = "[1] Wolf and Sheep\nWolf and Sheep is a 2016 film. It was screened at the 69th Cannes Film Festival."
    asked = "Wolf and Sheep was screened at which 2016 film festival?"
    phrases = candidate_phrases([observed], question=asked)
    assert "Wolf and Sheep" not in phrases and "2016" not in phrases
    assert "Cannes Film Festival" in phrases
    # A choice question's options are its possible answers; with nothing else found, the echoes stay.
    choice = candidate_phrases([observed], question="Was Wolf and Sheep or Cannes first?")
    assert "Wolf and Sheep" in choice
    assert candidate_phrases(["[1] Wolf and Sheep"], question=asked) == ["Wolf and Sheep"]


def test_a_yes_no_question_may_be_answered_yes_or_no_once_something_was_found():
    observed = "Coldplay are a British band. Pierre Bouvier is a Canadian singer."
    asked = "Are both Coldplay and Pierre Bouvier from the same country?"
    phrases = candidate_phrases([observed], question=asked)
    assert phrases[:2] == ["yes", "no"] and "British" in phrases
    assert candidate_phrases([], question=asked) == []  # nothing observed: no grounded answer yet
    assert "yes" not in candidate_phrases([observed], question="Is Coldplay or Pierre Bouvier older?")
    assert "yes" not in candidate_phrases([observed], question="Which band is British?")
    assert len(candidate_phrases([f"Name{n} Person met Other{n} Body." for n in range(100)], limit=5)) == 5


@tool
def search_pages(query: str) -> str:
    """Search the pages.

    Args:
        query: What to look for.
    """
    return PAGE if "tower" in query.lower() else "No passages match that query."


def test_with_nothing_to_copy_yet_the_model_looks_further_instead_of_answering():
    script = [
        decide("search_pages", query="paris landmark"),  # finds nothing: no answer may be copied yet
        decide("search_pages", query="eiffel tower"),
        decide("final_answer", answer="It was completed in 1889."),
    ]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        agent = Agent(model=model_for(srv), tools=[search_pages], answer_from_observations=True, max_steps=5)
        result = agent.run("When was the Eiffel Tower completed?")
        schemas = [r["response_format"]["json_schema"]["schema"] for r in srv.requests]
    assert (result.status, result.answer) == ("done", "It was completed in 1889.")
    assert "final_answer" in str(schemas[0]) and "final_answer" not in str(schemas[1])
    assert "1889" in str(_final_variant(schemas[2]))


def test_the_last_step_still_answers_when_nothing_was_found():
    script = [decide("search_pages", query="paris"), decide("final_answer", answer="I could not find it.")]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        agent = Agent(model=model_for(srv), tools=[search_pages], answer_from_observations=True, max_steps=2)
        result = agent.run("When was the Eiffel Tower completed?")
    assert (result.status, result.answer) == ("done", "I could not find it.")


FESTIVAL = (
    "[1] Wolf and Sheep\nWolf and Sheep is a drama by Shahrbanoo Sadat. It was screened at the Cannes Film Festival"
    " in May 2016.\n\n[2] Cannes\nCannes is a city in France."
)


def test_answer_phrases_come_from_the_sentence_that_matches_the_question():
    asked = "When was Wolf and Sheep screened at a film festival?"
    # The second sentence shares "film festival screened" with the question; the first only the echoed title.
    assert answer_phrases([FESTIVAL], asked.replace("When", "Where")) == ["Cannes Film Festival", "May 2016"]
    # "which film festival" asks for a festival: of that sentence's phrases, the one that names one.
    assert answer_phrases([FESTIVAL], "At which film festival was Wolf and Sheep screened?") == ["Cannes Film Festival"]
    # Asked for a year, only phrases with one; the title of a matching passage counts as its best sentence.
    assert answer_phrases([FESTIVAL], "In what year was Wolf and Sheep screened at a film festival?") == ["May 2016"]
    creatures = "[1] Dewey Lake Monster\nA creature of folklore seen in 1964.\n\n[2] Bigfoot\nAn ape of legend."
    assert answer_phrases([creatures], "What creature of folklore?") == ["Dewey Lake Monster", "1964"]
    # A question sharing no word with the observations gets every phrase; a choice question keeps its options.
    assert len(answer_phrases([FESTIVAL], "Who?")) == len(candidate_phrases([FESTIVAL], question="Who?"))
    assert "Wolf and Sheep" in answer_phrases([FESTIVAL], "Which of Wolf and Sheep and Cannes is a drama?")
    assert answer_phrases([FESTIVAL], "Was Wolf and Sheep screened at Cannes?")[:2] == ["yes", "no"]
    assert answer_phrases([], "Who?") == []


def test_a_what_x_question_keeps_the_phrases_that_name_an_x():
    trainer = "[1] Flower Alley\nHe was trained by Todd Pletcher, who was killed at Blue Grass Airport in Lexington, "
    trainer += "Kentucky."
    asked = "Flower Alley was bred by the trainer who was killed at what Fayette County, Kentucky airport?"
    assert answer_phrases([trainer], asked) == ["Blue Grass Airport"]
    # No phrase names the kind asked for ("which year", "what creature"), or a choice is offered: all of them.
    assert answer_phrases([trainer], "At what place was the trainer of Flower Alley killed?") == answer_phrases(
        [trainer], "Where was the trainer of Flower Alley killed?"
    )
    assert len(answer_phrases([trainer], "Which of Todd Pletcher or Blue Grass Airport was killed?")) > 1


def test_grounded_queries_are_the_task_its_names_and_what_the_tools_returned():
    task = "Where was the director of Wolf and Sheep born?"
    assert grounded_queries(task, []) == ["Where was the director of Wolf and Sheep born", "Wolf and Sheep"]
    queries = grounded_queries(task, [FESTIVAL])
    assert queries[:2] == ["Where was the director of Wolf and Sheep born", "Wolf and Sheep"]
    assert {"Shahrbanoo Sadat", "Cannes Film Festival", "Cannes"} <= set(queries)
    assert all("{" not in q and '"' not in q for q in grounded_queries('Is "x {y}" a thing?', []))
    # A number alone finds any page that has it: not a query.
    assert grounded_queries("Which creature became known in 1964?", ["[1] 1964\nIn 12 towns."]) == [
        "Which creature became known in 1964"
    ]
    parameters = {"type": "object", "properties": {"query": {"type": "string", "x-grounded": True}, "k": {}}}
    grounded = grounded_tool_parameters(parameters, queries)
    assert grounded["properties"]["query"]["enum"] == queries and grounded["properties"]["k"] == {}
    # The first search is the task; a title is a name, not the whole task.
    first = grounded_tool_parameters(parameters, queries, task=task, first=True)
    assert first["properties"]["query"]["enum"] == ["Where was the director of Wolf and Sheep born"]
    # Names joined in a phrase are offered whole and one by one; a title with "and" in it stays whole.
    assert grounded_queries("Which of Jonny Craig and Pete Doherty sang?", [])[1:] == [
        "Jonny Craig and Pete Doherty",
        "Jonny Craig",
        "Pete Doherty",
    ]
    title = {"type": "object", "properties": {"title": {"type": "string", "x-grounded": "phrase"}}}
    assert grounded_tool_parameters(title, queries, task=task)["properties"]["title"]["enum"] == queries[1:]
    # What a tool that found nothing suggests is worth trying next.
    missed = "No page titled 'Where was the director born'. Similar titles: Shahrbanoo Sadat, Kabul (city)."
    assert grounded_queries(task, [missed])[2:] == ["Shahrbanoo Sadat", "Kabul city"]
    assert grounded_tool_parameters({"properties": {"query": {"type": "string"}}}, queries)["properties"] == {
        "query": {"type": "string"}
    }


def test_grounded_marks_a_tool_parameter_and_a_mark_that_cannot_hold_fails_when_the_tool_is_made():
    @tool
    def find_order(
        customer: Annotated[str, grounded("phrase")], code: Annotated[str, grounded(pattern="^[A-Z]+$")]
    ) -> str:
        """Find an order.

        Args:
            customer: The customer's name.
            code: The order code.
        """
        return customer + code

    properties = find_order.parameters["properties"]
    assert properties["customer"]["x-grounded"] == "phrase"
    assert properties["code"]["x-grounded"] is True and properties["code"]["pattern"] == "^[A-Z]+$"
    grounded_now = grounded_tool_parameters(find_order.parameters, ["Ada Lovelace", "ORD"])["properties"]
    assert grounded_now["customer"]["enum"] == ["Ada Lovelace", "ORD"] and "pattern" not in grounded_now["code"]
    with pytest.raises(ValueError, match="must be True, 'phrase' or 'expression', not 'phrse'"):
        grounded("phrse")  # type: ignore[arg-type]
    # A misspelt mark written by hand would be ignored silently, and a number cannot take a query: both refused.
    with pytest.raises(ValueError, match=r"tool 'misspelt', parameter 'name': .* not 'phrse'"):

        @tool
        def misspelt(name: Annotated[str, Field(json_schema_extra={"x-grounded": "phrse"})]) -> str:
            return name

    with pytest.raises(ValueError, match="parameter 'count': only a string parameter can be grounded, not 'integer'"):

        @tool
        def counted(count: Annotated[int, grounded()]) -> str:
            return str(count)

    @tool
    def off(name: Annotated[str, Field(json_schema_extra={"x-grounded": False})]) -> str:
        return name

    assert grounded_tool_parameters(off.parameters, ["Ada"]) == off.parameters  # False: not grounded


def _arguments_of(schema: dict[str, Any], name: str) -> dict[str, Any]:
    variants = schema["properties"]["action"]["anyOf"]
    return next(v for v in variants if v["properties"]["name"]["const"] == name)["properties"]["arguments"]


def test_react_grounds_search_queries_and_titles_in_the_task_and_the_observations():
    corpus = LocalCorpus(passages=[Passage("Wolf and Sheep", FESTIVAL.split("\n")[1]), Passage("Cannes", "A city.")])
    task = "Where was Wolf and Sheep screened?"
    script = [
        decide("local_search", query="Wolf and Sheep"),
        decide("lookup", title="Cannes"),
        decide("final_answer", answer="Cannes Film Festival"),
    ]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        agent = Agent(model=model_for(srv), tools=search_tools(corpus), ground_arguments=True, max_steps=5)
        result = agent.run(task)
        schemas = [r["response_format"]["json_schema"]["schema"] for r in srv.requests]
    assert result.status == "done"
    first, second = (_arguments_of(s, "local_search")["properties"]["query"]["enum"] for s in schemas[:2])
    # Nothing observed yet: the first search is for the task itself (retrieval with the question, as RAG
    # does); a title is one of the names the task gives.
    assert first == ["Where was Wolf and Sheep screened"]
    assert _arguments_of(schemas[0], "lookup")["properties"]["title"]["enum"] == ["Wolf and Sheep"]
    assert second[:2] == ["Where was Wolf and Sheep screened", "Wolf and Sheep"]
    assert "Shahrbanoo Sadat" in second and "Shahrbanoo Sadat" in str(_arguments_of(schemas[1], "lookup"))
    # Off (the default for a model that is not a small local one), the parameters are the tools' own.
    with ScriptedServer(script[:1] + script[2:], native_tools=False, json_schema=True) as srv:
        Agent(model=model_for(srv), tools=search_tools(corpus), max_steps=5).run(task)
        assert "enum" not in str(_arguments_of(srv.requests[0]["response_format"]["json_schema"]["schema"], "lookup"))


def test_native_tool_schemas_carry_the_grounded_queries_too():
    corpus = LocalCorpus(passages=[Passage("Wolf and Sheep", "A drama by Shahrbanoo Sadat.")])
    script = [call("local_search", query="Wolf and Sheep"), {"content": "Shahrbanoo Sadat"}]
    with ScriptedServer(script) as srv:
        agent = Agent(model=model_for(srv), tools=search_tools(corpus), ground_arguments=True, max_steps=4)
        result = agent.run("Who directed Wolf and Sheep?")
        tools = [{t["function"]["name"]: t["function"]["parameters"] for t in r["tools"]} for r in srv.requests]
    assert result.answer == "Shahrbanoo Sadat"
    assert tools[0]["local_search"]["properties"]["query"]["enum"] == ["Who directed Wolf and Sheep"]
    assert "Shahrbanoo Sadat" in tools[1]["lookup"]["properties"]["title"]["enum"]


def test_a_grounded_argument_is_not_the_models_own_text_so_what_it_names_can_be_the_answer():
    corpus = LocalCorpus(passages=[Passage("Cannes", "A city on the French Riviera.")])
    script = [decide("lookup", title="Cannes"), decide("final_answer", answer="Cannes")]
    enums = []
    for on in (True, False):
        with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
            agent = Agent(
                model=model_for(srv),
                tools=search_tools(corpus),
                answer_from_observations="phrases",
                ground_arguments=on,
                max_steps=3,
            )
            assert agent.run("Which city is on the French Riviera?").answer == "Cannes"
            second = srv.requests[1]["response_format"]["json_schema"]["schema"]
            enums.append(_final_variant(second)["properties"]["arguments"]["properties"]["answer"]["enum"])
    # Written by the model, "Cannes" would be an echo of its own title ("No page titled Cannes" is no answer).
    assert "Cannes" in enums[0] and "Cannes" not in enums[1]


def test_task_expressions_are_the_calculations_the_task_writes_out():
    assert task_expressions("What is (37 - 112) * 6 + 15?", EXPRESSION_PATTERN) == ["(37 - 112) * 6 + 15"]
    assert task_expressions('Compute "2*(3+4)-1".') == ["2*(3+4)-1"]
    # With one calculation of two operators, the others the task writes are offered too, in order.
    assert task_expressions("What is 12 * 4 and 7 + 8 * 2, then 3 + 4 + 5?") == ["12 * 4", "7 + 8 * 2", "3 + 4 + 5"]
    # One operator alone is as often a fraction or a range as a calculation; names and numbers are no expression.
    assert task_expressions("Half (1/2) of 30 apples cost 5 - 10 dollars.") == []
    assert task_expressions("What is 2 + 3?") == []
    assert task_expressions("Natalia sold clips to 48 of her 3 friends, 2 of them twice.") == []
    assert task_expressions("x = 3 + 4 * y") == []
    # The parameter's own pattern has the last word (the calculator's has no room for 50 operations), and a
    # calculation is taken whole: a part of it would be another one.
    assert task_expressions(" + ".join(["1"] * 50), EXPRESSION_PATTERN) == []
    assert task_expressions("What is 2 * 3 + 4 - 1?", r"[0-9 +-]+") == []


def test_a_calculators_first_call_copies_the_tasks_expression_and_later_calls_are_free():
    expression = calculator.parameters["properties"]["expression"]
    task = "What is (110 + 161) * 4 - 2?"
    first = grounded_tool_parameters(calculator.parameters, [], task=task, first=True)
    assert first["properties"]["expression"] == {
        "type": "string",
        "description": expression["description"],
        "x-grounded": "expression",
        "enum": ["(110 + 161) * 4 - 2"],  # the pattern goes: the one value is the whole shape
    }
    assert grounded_tool_parameters(calculator.parameters, [], task=task)["properties"]["expression"] == expression
    no_calculation = grounded_tool_parameters(calculator.parameters, [], task="What is 4 - 2?", first=True)
    assert no_calculation["properties"]["expression"] == expression


def test_react_offers_a_small_model_only_the_tasks_expression_for_its_first_calculation():
    task = "What is (110 + 161) * 4 - 2?"
    script = [
        decide("calculator", expression="(110 + 161) * 4 - 2"),
        decide("calculator", expression="1082 / 2"),
        decide("final_answer", answer="541"),
    ]
    for on in (True, False):
        with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
            agent = Agent(model=model_for(srv), tools=[calculator], ground_arguments=on, max_steps=4)
            result = agent.run(task)
            schemas = [r["response_format"]["json_schema"]["schema"] for r in srv.requests]
        outputs = [e.output for e in result.events if isinstance(e, ToolResult)]
        assert result.status == "done" and outputs == ["1082", "541"]
        enums = [_arguments_of(s, "calculator")["properties"]["expression"].get("enum") for s in schemas]
        assert enums == ([["(110 + 161) * 4 - 2"], None, None] if on else [None, None, None])
