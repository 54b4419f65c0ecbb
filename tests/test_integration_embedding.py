"""Typed output on the embedded model (SmolLM2-135M through llama.cpp): the decision grammar carries the output
type's schema, so the answer parses every time, whether or not it is right."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentlab import Agent

pytestmark = pytest.mark.integration

PROMPTS = [
    "What is 2 + 3?",
    "How many legs does a dog have?",
    "What is 10 minus 4?",
    "How many days are in a week?",
    "What is 6 times 7?",
    "How many months are in a year?",
    "What is 100 divided by 4?",
    "How many wheels does a bicycle have?",
    "What is 9 + 8?",
    "How many sides does a triangle have?",
    "In what year did the Second World War end?",
    "How many hours are in a day?",
    "What is 15 - 6?",
    "How many planets are in the solar system?",
    "What is 3 squared?",
    "How many minutes are in an hour?",
    "How many continents are there?",
    "What is 12 + 30?",
    "How many strings does a violin have?",
    "What is half of 50?",
]


def test_int_output_parses_on_all_twenty_prompts(local_model) -> None:
    agent = Agent(model=local_model, output_type=int, max_steps=2)
    results = [agent.run(prompt) for prompt in PROMPTS]
    unparsed = [(p, r.status, r.error) for p, r in zip(PROMPTS, results, strict=True) if r.status != "done"]
    assert not unparsed
    assert all(type(r.output) is int for r in results)
    assert all(r.answer == str(r.output) for r in results)


class City(BaseModel):
    name: str
    country: str
    population_millions: float
    capital: bool


def test_a_pydantic_output_parses(local_model) -> None:
    result = Agent(model=local_model, output_type=City, max_steps=2).run("Describe Paris.")
    assert result.status == "done", result.error
    assert isinstance(result.output, City) and result.output.name
    assert result.events[-1].output == result.output.model_dump(mode="json")
