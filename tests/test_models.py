"""Model selection and the retry policy's reading of server hints."""

from __future__ import annotations

import pytest

from agentlab.models import LocalModel, ModelUnavailable, OpenAIModel, default_model
from agentlab.models.local import local_model_available


def test_environment_endpoint_wins():
    model = default_model(
        {"AGENTLAB_BASE_URL": "http://127.0.0.1:1/v1", "AGENTLAB_MODEL": "m", "AGENTLAB_API_KEY": "k"}
    )
    assert isinstance(model, OpenAIModel) and model.base_url == "http://127.0.0.1:1/v1" and model.name == "m"


def test_openai_key_with_a_model_name_uses_openai():
    model = default_model({"OPENAI_API_KEY": "sk-x", "AGENTLAB_MODEL": "gpt-4o-mini"})
    assert isinstance(model, OpenAIModel) and "api.openai.com" in str(model.base_url)


def test_base_url_without_model_is_a_clear_error():
    with pytest.raises(ModelUnavailable, match="AGENTLAB_MODEL"):
        default_model({"AGENTLAB_BASE_URL": "http://127.0.0.1:1/v1"})


def test_no_configuration_falls_back_to_the_embedded_model():
    if not local_model_available():
        with pytest.raises(ModelUnavailable, match="llama-cpp-python"):
            default_model({})
    else:
        assert isinstance(default_model({}), LocalModel)


def test_long_string_bounds_are_dropped_for_the_local_grammar():
    from agentlab.models.local import grammar_safe

    schema = {
        "type": "object",
        "properties": {
            "thought": {"type": "string", "maxLength": 200},
            "program": {"type": "string", "maxLength": 5000},
            "items": {"type": "array", "items": {"type": "string", "maxLength": 9000}},
        },
    }
    safe = grammar_safe(schema)
    assert safe["properties"]["thought"]["maxLength"] == 200
    assert "maxLength" not in safe["properties"]["program"]
    assert "maxLength" not in safe["properties"]["items"]["items"]
    assert schema["properties"]["program"]["maxLength"] == 5000  # the caller's schema is untouched
