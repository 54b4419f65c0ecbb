"""The model options shared by the subcommands that run agents (`run`, `chat`): --base-url and --model."""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add --base-url and --model (without them, the model is resolved from the environment)."""
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://localhost:8080/v1")
    parser.add_argument("--model", help="the model name at --base-url")


def model_from_args(args: argparse.Namespace) -> Any:
    """An OpenAIModel for --base-url/--model (the key from AGENTLAB_API_KEY or OPENAI_API_KEY), or None for the
    default model; SystemExit when only one of the two is given."""
    if not (args.base_url or args.model):
        return None
    from agentlab.models import OpenAIModel

    if not (args.base_url and args.model):
        raise SystemExit("--base-url and --model go together")
    api_key = os.environ.get("AGENTLAB_API_KEY") or os.environ.get("OPENAI_API_KEY")
    return OpenAIModel(model=args.model, base_url=args.base_url, api_key=api_key)
