"""The public surface: what rlhfkit exports is what the README documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import rlhfkit

README = Path(__file__).resolve().parent.parent / "README.md"


def test_all_is_sorted_and_every_name_resolves_with_a_docstring() -> None:
    """__all__ is sorted, and each name exists; classes and functions carry a docstring."""
    assert rlhfkit.__all__ == sorted(rlhfkit.__all__)
    for name in rlhfkit.__all__:
        value = getattr(rlhfkit, name)
        if callable(value) and not isinstance(value, type(rlhfkit.StorageBackend.MEMORY)):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_readme_public_api_section_lists_exactly_all() -> None:
    """The README's "Public API" section names exactly the names in rlhfkit.__all__."""
    text = README.read_text()
    section = text.split("importable from `rlhfkit`:", 1)[1].split("Storage classes are in", 1)[0]
    documented = set(re.findall(r"`([A-Za-z_]+)`", section))
    assert documented == set(rlhfkit.__all__) - {"__version__"}


def test_import_needs_only_pydantic() -> None:
    """`import rlhfkit` loads none of the optional dependencies."""
    code = (
        "import sys, rlhfkit; heavy = ('sqlalchemy', 'httpx', 'pyarrow', 'openai', 'anthropic', 'fastapi', 'typer');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
