"""The `python` tool: run model-written code in the sandbox (never in this process)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from agentlab.tools.function_tool import Tool, tool

if TYPE_CHECKING:
    from agentlab.sandbox import Sandbox, SandboxResult


class CodeError(RuntimeError):
    """The code failed inside the sandbox; the message is what the model needs to fix it."""


def describe_failure(result: SandboxResult) -> str:
    """What went wrong in a sandbox run, with the tail of stderr, as a message for the model."""
    if result.timed_out:
        return f"timed out after {result.duration:.1f}s"
    detail = result.error or "failed"
    tail = result.stderr.strip()[-600:]
    return f"{detail}\n{tail}" if tail and tail not in detail else detail


class SandboxRunner:
    """Runs code in a sandbox created on first use (or the one given), raising CodeError on failure:
    the one path by which tools and strategies (the `python` tool, PAL) run model-written code."""

    def __init__(self, sandbox: Sandbox | None = None, timeout: float = 10.0) -> None:
        self.sandbox = sandbox
        self.timeout = timeout

    async def run(self, code: str, call: str | None = None) -> SandboxResult:
        """Run `code` (then `call()` if given); raise CodeError when it fails or times out."""
        if self.sandbox is None:
            from agentlab.sandbox import Sandbox

            self.sandbox = Sandbox(timeout=self.timeout)
        result = await self.sandbox.arun(code, timeout=self.timeout, call=call)
        if not result.ok:
            raise CodeError(describe_failure(result))
        return result


# Marked as code, so a grammar keeps its newlines and braces (agentlab.models.grammar.CODE).
Code = Annotated[str, Field(json_schema_extra={"contentMediaType": "text/x-python"})]


def python_tool(sandbox: Sandbox | None = None, *, timeout: float = 10.0, name: str = "python") -> Tool[..., Any]:
    """A tool that runs code in `sandbox` (created on first use) and returns what it printed.

    Args:
        sandbox: The sandbox to run in; a default `Sandbox` is created on the first call.
        timeout: Seconds each run may take.
        name: The tool's name for the model.
    """
    runner = SandboxRunner(sandbox, timeout)

    # The tool's own timeout is looser than the sandbox's, which kills the code first and says so.
    @tool(name=name, timeout=timeout + 10)
    async def run_python(code: Code) -> str:
        """Run Python code in a sandbox and return what it prints. Print the values you need.

        Args:
            code: A Python program (standard library maths modules only; no files, network or processes).
        """
        result = await runner.run(code)
        return result.stdout or "(no output: print the result)"

    return run_python
