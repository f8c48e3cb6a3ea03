"""Process-level behaviour: optional imports, fork safety, and the public names."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import rlhfkit.instrument as instrument_module
from rlhfkit.instrument import RLHFInstrumentation


def test_import_does_not_load_the_sdks() -> None:
    """Importing rlhfkit.instrument and rlhfkit.testing loads neither openai nor anthropic."""
    code = (
        "import sys, rlhfkit.instrument, rlhfkit.testing\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'httpx', 'starlette', 'flask') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_child_process_after_fork_captures_on_its_own() -> None:
    """After fork the child gets a fresh worker and lock, captures its own calls and does not re-deliver the parent's."""
    inst = RLHFInstrumentation()
    try:
        inst.capture_interaction("parent", "r")
        assert len(inst.get_interactions()) == 1
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                inst.capture_interaction("child", "r")
                prompts = [i.prompt for i in inst.get_interactions()]
                code = (
                    0
                    if prompts == ["parent", "child"]
                    and inst._worker.thread
                    and inst._worker.thread.is_alive()
                    else 2
                )
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert [i.prompt for i in inst.get_interactions()] == ["parent"]
    finally:
        inst.destroy(timeout_s=1)


def test_public_names_are_exported() -> None:
    """Every name in __all__ exists and has a docstring."""
    for name in instrument_module.__all__:
        value = getattr(instrument_module, name)
        if name in {"Instrumentor", "Middleware", "StorageKind"}:  # type aliases
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, name
