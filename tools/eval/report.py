"""A run's summary, its JSON and markdown files, and the one-line summary printed last."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from tools.eval.scoring import has_debris, wilson_interval


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(results)
    correct = sum(bool(r["correct"]) for r in results)
    low, high = wilson_interval(correct, n)
    decisions = sum(r["decisions"] for r in results)
    attempts = decisions + sum(r["parse_errors"] for r in results)
    f1s = [r["f1"] for r in results if r.get("f1") is not None]

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in results) if results else 0.0

    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "ci95": [low, high],
        "f1": statistics.fmean(f1s) if f1s else None,
        "parse_rate": decisions / attempts if attempts else None,
        "mean_steps": mean("steps"),
        "mean_tokens": statistics.fmean(r["prompt_tokens"] + r["completion_tokens"] for r in results) if n else 0.0,
        "mean_seconds": mean("seconds"),
        "statuses": dict(Counter(r["status"] for r in results)),
        "parse_errors": sum(r["parse_errors"] for r in results),
        "errors": sum(r["status"] == "error" for r in results),
        "compactions": sum(r.get("compactions", 0) for r in results),  # 0 for results from before it was counted
        # Items on which the agent called a tool at least once (None for results from before it was counted).
        "tool_use": (
            sum(r["tool_calls"] > 0 for r in results) / n if n and all("tool_calls" in r for r in results) else None
        ),
        "debris": sum(bool(r.get("debris", has_debris(r.get("prediction")))) for r in results),
        "cached": sum(bool(r.get("cached")) for r in results),
    }


def summary_line(suite: str, strategy: str, model: str, summary: dict[str, Any], variant: str = "") -> str:
    low, high = summary["ci95"]
    parse = summary["parse_rate"]
    options = f" variant={variant}" if variant else ""
    return (
        f"summary: suite={suite} strategy={strategy}{options} model={model} n={summary['n']} "
        f"accuracy={summary['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}) "
        f"parse_rate={'n/a' if parse is None else f'{parse:.3f}'} parse_errors={summary['parse_errors']} "
        f"errors={summary['errors']} tool_use={_share(summary['tool_use'])} debris={summary['debris']}"
    )


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


TABLE_HEADER = (
    "| suite | strategy | model | n | accuracy (95% CI) | F1 | parse rate | parse errors | errors | tool use | debris "
    "| mean steps | mean tokens | mean s |\n"
    "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(suite: str, strategy: str, model: str, s: dict[str, Any]) -> str:
    low, high = s["ci95"]
    f1 = "–" if s["f1"] is None else f"{s['f1']:.2f}"
    parse = "–" if s["parse_rate"] is None else f"{s['parse_rate']:.2f}"
    return (
        f"| {suite} | {strategy} | {model} | {s['n']} | {s['accuracy']:.2f} ({low:.2f}–{high:.2f}) | {f1} | "
        f"{parse} | {s['parse_errors']} | {s['errors']} | {_share(s['tool_use'])} | {s['debris']} | "
        f"{s['mean_steps']:.1f} | {s['mean_tokens']:.0f} | {s['mean_seconds']:.1f} |"
    )


def write_run(
    out: Path, stamp: str, config: dict[str, Any], model: str, summary: dict[str, Any], results: list[dict[str, Any]]
) -> tuple[Path, Path]:
    """`<suite>-<strategy>-<model>-<stamp>.json` (everything) and `.md` (summary and per-item table)."""
    out.mkdir(parents=True, exist_ok=True)
    variant = f"-{config['variant']}" if config.get("variant") else ""
    label = f"{config['strategy']} [{config['variant']}]" if config.get("variant") else config["strategy"]
    base = _slug(f"{config['suite']}-{config['strategy']}{variant}-{model}-{stamp}")
    json_path, md_path = out / f"{base}.json", out / f"{base}.md"  # not with_suffix: names contain dots
    json_path.write_text(
        json.dumps({"config": config, "model_name": model, "summary": summary, "items": results}, indent=2) + "\n",
        encoding="utf-8",
    )
    lines = [
        f"# {config['suite']} · {label} · {model}",
        "",
        TABLE_HEADER,
        table_row(config["suite"], label, model, summary),
        "",
        "| item | gold | prediction | correct | status | steps | tool calls | debris |",
        "|---|---|---|---|---|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['id']} | {_cell(r['gold'])} | {_cell(r['prediction'])} | {'yes' if r['correct'] else 'no'} "
            f"| {r['status']} | {r['steps']} | {r.get('tool_calls', '–')} | {'yes' if r.get('debris') else 'no'} |"
        )
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return json_path, md_path


def _cell(text: str | None, limit: int = 60) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)
