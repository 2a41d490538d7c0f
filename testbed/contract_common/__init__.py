"""What the contract servers (marquez_contract, openmetadata_contract) share: the error for a
missing spec, the validation problem type, where the official schemas live, how a JSON path
is printed, and how a server process is run."""
from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass


class SpecMissing(RuntimeError):
    """The official schemas are not where they should be."""


@dataclass
class Problem:
    """One reason a request body is rejected: where, and why."""

    path: str
    reason: str

    def as_json(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def shared_spec_dir(env_var: str, name: str) -> str:
    """`$env_var`, else `<repo>/../shared/<name>` (shared/ sits beside the checkout)."""
    env = os.environ.get(env_var)
    if env:
        return env
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    return os.path.join(repo, "..", "shared", name)


def fmt_path(parts) -> str:
    """A JSON instance path as `a.b[0].c` (`$` for the root)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "$"


def run_server(serve, args, prog: str) -> int:
    """Runs `serve(args)` on uvloop when installed; a start-up error exits 2 with its reason."""
    try:
        import uvloop  # optional: faster event loop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(args))
    except RuntimeError as e:  # SpecMissing and other start-up failures
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    return 0
