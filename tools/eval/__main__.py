"""`python -m tools.eval --suite gsm8k --strategy react pal --n 50`: accuracy of strategies on one model.

Prints a markdown table of the runs, then one summary line per strategy (the very last line is the last
strategy's). Per-run JSON and markdown go to --out; finished items are cached there, so rerunning the same
command after an interruption only runs what is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tools.eval.report import TABLE_HEADER, summarize, summary_line, table_row, write_run
from tools.eval.runner import EvalConfig, ItemCache, ModelSpec, StrategySpec, UnknownStrategy, config_dict, evaluate
from tools.eval.suites import SUITES, DataError, Item, load_items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", required=True, choices=sorted(SUITES))
    parser.add_argument(
        "--strategy",
        nargs="+",
        default=["react"],
        metavar="NAME",
        help="one or more of direct, cot and agentlab.strategies.STRATEGIES; options as name:key=value,...",
    )
    parser.add_argument("--n", type=int, default=50, help="how many items (default 50)")
    parser.add_argument("--data", help="JSONL items (question, answer); default: the suite's file in ../shared/data")
    parser.add_argument("--corpus", help="hotpotqa: JSONL corpus (title, text) for local_search/lookup")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint; default: AGENTLAB_* env, else embedded")
    parser.add_argument("--model", help="model name at --base-url")
    parser.add_argument("--out", default="runs/eval", help="where run files and the item cache go")
    parser.add_argument("--seed", type=int, default=0, help="item order (a shuffle; arith: generation)")
    parser.add_argument("--offset", type=int, default=0, help="skip this many items of that order")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--concurrency", type=int, help="items at once (local executor); default 1 embedded, 4 remote")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="per item")
    parser.add_argument("--fresh", action="store_true", help="ignore cached items (results are still cached)")
    parser.add_argument(
        "--output-type",
        choices=["auto", "float", "text"],
        default="auto",
        help="the agent's output_type: auto is float for the numeric suites (gsm8k, arith), text otherwise",
    )
    parser.add_argument(
        "--demos",
        choices=["auto", "on", "off"],
        default="auto",
        help="demonstrations: auto is the Agent default (built-in demos on the embedded model only)",
    )
    parser.add_argument(
        "--loose-grammar",
        action="store_true",
        help="the embedded model without its budgeted grammar (free strings unconstrained), for ablations",
    )
    parser.add_argument(
        "--repeat-penalty",
        type=float,
        metavar="P",
        help="the embedded model's repeat penalty (default: LocalModel's, 1.0), for ablations",
    )
    parser.add_argument(
        "--context-window",
        type=int,
        metavar="N",
        help="the agent's context window in tokens (the embedded model is also loaded with n_ctx=N)",
    )
    parser.add_argument(
        "--no-compaction", action="store_true", help="send whole conversations, however long (for comparison)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.console import Console

    errors = Console(stderr=True)
    try:
        strategies = [StrategySpec.parse(text) for text in args.strategy]
        for spec in strategies:
            spec.factory()  # fail on a missing strategy before any model call
        items = load_items(args.suite, n=args.n, seed=args.seed, offset=args.offset, data=args.data)
        if args.context_window is not None and args.context_window <= 0:
            raise ValueError(f"--context-window must be a positive number of tokens, not {args.context_window}")
        model_spec = ModelSpec(
            args.base_url,
            args.model,
            tight_grammar=not args.loose_grammar,
            n_ctx=args.context_window,
            repeat_penalty=args.repeat_penalty,
        )
        model = model_spec.build()
    except (UnknownStrategy, DataError, ValueError) as problem:
        errors.print(f"[red]error:[/] {problem}")
        return 2
    concurrency = args.concurrency or (4 if args.base_url else 1)
    out = Path(args.out)
    cache = ItemCache(out / "cache.jsonl", read=not args.fresh)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows, summaries = [], []
    for spec in strategies:
        config = EvalConfig(
            args.suite,
            spec,
            model_spec,
            args.corpus,
            args.max_steps,
            args.max_seconds,
            args.output_type,
            args.demos,
            args.context_window,
            not args.no_compaction,
        )
        results = _run_with_progress(config, items, cache, model, args.executor, concurrency, errors)
        summary = summarize(results)
        json_path, _ = write_run(out, stamp, config_dict(config), model.name, summary, results)
        errors.print(f"wrote {json_path} and .md ({summary['cached']} of {summary['n']} items from the cache)")
        rows.append(table_row(args.suite, config.label, model.name, summary))
        summaries.append(summary_line(args.suite, spec.label, model.name, summary, config.variant))
    print(TABLE_HEADER)
    print("\n".join(rows))
    print("\n".join(summaries))
    return 0


def _run_with_progress(
    config: EvalConfig,
    items: list[Item],
    cache: ItemCache,
    model: Any,
    executor: str,
    concurrency: int,
    console: Any,
) -> list[dict[str, Any]]:
    """`evaluate` under a rich progress bar on stderr (stdout stays for the tables and summaries)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[correct]} correct"),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{config.suite} · {config.label}", total=len(items), correct=0)
        correct = 0

        def advance(item: Item, result: dict[str, Any]) -> None:
            nonlocal correct
            correct += bool(result["correct"])
            progress.update(task, advance=1, correct=correct)

        return evaluate(
            config, items, cache, model=model, executor=executor, concurrency=concurrency, on_result=advance
        )


if __name__ == "__main__":
    sys.exit(main())
