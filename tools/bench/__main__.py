"""`python -m tools.bench <name>`: overhead, streaming, imports, first-request, concurrency, sandbox, codeact,
compaction or local.

Each prints a markdown table for docs/benchmarks.md; the last line is a one-line summary. Timings on a
shared machine are noisy: compare the ratios, not bare times.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="name", required=True)
    overhead = sub.add_parser("overhead", help="agentlab vs the raw openai client, per step")
    overhead.add_argument("--steps", type=int, default=10)
    overhead.add_argument("--rounds", type=int, default=10)
    overhead.add_argument("--episodes", type=int, default=20, help="episodes per contender per round")
    overhead.add_argument("--profile", action="store_true", help="also print a cProfile of agentlab episodes")
    streaming = sub.add_parser("streaming", help="deltas=True vs False vs the raw client streaming; first token")
    streaming.add_argument("--steps", type=int, default=10)
    streaming.add_argument("--rounds", type=int, default=6)
    streaming.add_argument("--episodes", type=int, default=10, help="episodes per contender per round")
    streaming.add_argument("--samples", type=int, default=30, help="time-to-first-token samples on the server")
    streaming.add_argument("--local-runs", type=int, default=3, help="embedded-model runs (0: skip)")
    imports = sub.add_parser("imports", help="import time in fresh interpreters")
    imports.add_argument("--n", type=int, default=15)
    first = sub.add_parser("first-request", help="each strategy's first request with one tool, in characters")
    first.add_argument("--show", metavar="STRATEGY", action="append", default=[], help="also print its request")
    concurrency = sub.add_parser("concurrency", help="N agents at once against a server with latency")
    concurrency.add_argument("--agents", type=int, nargs="+", default=[10, 100, 500])
    concurrency.add_argument("--steps", type=int, default=10)
    concurrency.add_argument("--latency", type=float, default=0.05)
    concurrency.add_argument("--raw-up-to", type=int, default=500, help="also time the raw client up to this N")
    concurrency.add_argument("--memory-up-to", type=int, default=500, help="measure agentlab's memory up to this N")
    concurrency.add_argument("--raw-memory-up-to", type=int, default=100, help="the raw client's memory up to N")
    concurrency.add_argument(
        "--profile", type=int, metavar="N", default=0, help="also print a cProfile of N agents at once"
    )
    sandbox = sub.add_parser("sandbox", help="sandbox run latency per isolation level")
    sandbox.add_argument("--runs", type=int, default=10)
    codeact = sub.add_parser("codeact", help="one tool call from CodeAct code vs from ReAct")
    codeact.add_argument("--rounds", type=int, default=10)
    codeact.add_argument("--calls", type=int, default=200, help="tool calls per snippet")
    compaction = sub.add_parser("compaction", help="what context compaction costs: time and tokens")
    compaction.add_argument("--pages", type=int, default=12, help="long tool results per episode")
    compaction.add_argument("--rounds", type=int, default=5)
    local = sub.add_parser("local", help="the embedded model before/after: tokens/s and time per decision")
    local.add_argument("--runs", type=int, default=3)
    local.add_argument("--max-tokens", type=int, default=96, help="of the free-text request")
    local.add_argument("--steps", type=int, default=3, help="max steps of each ReAct run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lines: list[str]
    if args.name == "overhead":
        from tools.bench import overhead

        result = overhead.measure(args.steps, args.rounds, args.episodes)
        lines = overhead.table(result)
        if args.profile:
            lines += ["", "```", overhead.profile(args.steps).rstrip(), "```"]
        lines += ["", overhead.summary(result)]
    elif args.name == "streaming":
        from tools.bench import streaming

        measured = streaming.measure(args.steps, args.rounds, args.episodes, args.samples, args.local_runs)
        lines = [*streaming.table(measured), "", streaming.summary(measured)]
    elif args.name == "imports":
        from tools.bench import imports

        samples = imports.measure(args.n)
        lines = [*imports.table(samples), "", imports.summary(samples)]
    elif args.name == "first-request":
        from tools.bench import first_request

        rows = first_request.measure()
        lines = first_request.table(rows)
        for strategy in args.show:
            lines += ["", f"{strategy}:", "```json", first_request.show(rows, strategy), "```"]
        lines += ["", first_request.summary(rows)]
    elif args.name == "concurrency":
        from tools.bench import concurrency

        rows = concurrency.measure(
            tuple(args.agents), args.steps, args.latency, args.raw_up_to, args.memory_up_to, args.raw_memory_up_to
        )
        lines = concurrency.table(rows, args.steps, args.latency)
        if args.profile:
            lines += ["", "```", concurrency.profile(args.profile, args.steps, args.latency).rstrip(), "```"]
        lines += ["", concurrency.summary(rows)]
    elif args.name == "sandbox":
        from tools.bench import sandbox

        try:
            rows = sandbox.measure(args.runs)
        except sandbox.SandboxMissing as missing:
            print(f"sandbox: skipped: {missing}")
            return 0
        lines = [*sandbox.table(rows), "", sandbox.summary(rows)]
    elif args.name == "codeact":
        from tools.bench import codeact

        cost = codeact.measure(args.rounds, args.calls)
        lines = [*codeact.table(cost), "", codeact.summary(cost)]
    elif args.name == "compaction":
        from tools.bench import compaction

        measured = compaction.measure(args.pages, args.rounds)
        lines = [*compaction.table(measured), "", compaction.summary(measured)]
    else:
        from tools.bench import local_model

        try:
            result = local_model.measure(args.runs, args.max_tokens, args.steps)
        except local_model.LocalModelMissing as missing:
            print(f"local model: skipped: {missing}")
            return 0
        lines = [*local_model.table(result), "", local_model.summary(result)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
