"""Which model an `Agent()` without one uses: the environment's endpoint, else the embedded model."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from agentlab.models.base import Model

OPENAI_URL = "https://api.openai.com/v1"


def is_small_model(model: object) -> bool:
    """True for the embedded small model (any `LocalModel`): the one rule by which agents turn on what helps
    small models by default (demonstrations, ReAct's forced tool call and grounded answers).

    Read without importing the embedded model's module: while it is not imported, no model is a LocalModel."""
    local = sys.modules.get("agentlab.models.local")
    return local is not None and isinstance(model, local.LocalModel)


def default_model(environ: Mapping[str, str] | None = None) -> Model:
    """AGENTLAB_BASE_URL / AGENTLAB_MODEL / AGENTLAB_API_KEY (or OPENAI_API_KEY with OpenAI's URL),
    else the embedded local model; a clear error when neither can be had."""
    from agentlab.models.local import INSTALL_HINT, LocalModel, ModelUnavailable, local_model_available

    env = os.environ if environ is None else environ
    base_url = env.get("AGENTLAB_BASE_URL")
    model = env.get("AGENTLAB_MODEL")
    api_key = env.get("AGENTLAB_API_KEY")
    if not base_url and env.get("OPENAI_API_KEY") and model:
        base_url, api_key = OPENAI_URL, api_key or env["OPENAI_API_KEY"]
    if base_url:
        from agentlab.models.openai_compatible import OpenAIModel

        if not model:
            raise ModelUnavailable("AGENTLAB_BASE_URL is set but AGENTLAB_MODEL is not: name the model to use")
        if api_key is None and base_url.rstrip("/") == OPENAI_URL:
            api_key = env.get("OPENAI_API_KEY")
        return OpenAIModel(model=model, base_url=base_url, api_key=api_key)
    if local_model_available():
        return LocalModel()
    raise ModelUnavailable(f"no model configured and the embedded model is unavailable: {INSTALL_HINT}")
