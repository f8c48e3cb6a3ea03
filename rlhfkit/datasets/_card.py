"""The dataset card: a README.md beside the files, for people and for the Hub.

Several kinds may be exported to one directory; the card describes all of
them. What each export reported is kept in ``.rlhfkit-datasets.json`` so that
the card can be rewritten whole after every export. The YAML header declares
one Hugging Face ``configs`` entry per kind, so ``datasets.load_dataset(dir,
name=kind)`` finds the right files (when every kind in the directory has the
same file format: `datasets` picks one loader per directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_card"]

_STATE = ".rlhfkit-datasets.json"

_FORMS = {
    ("preference", "trl"): "TRL preference (DPO, ORPO, CPO, RewardTrainer): prompt / chosen / rejected",
    ("preference", "openai"): "OpenAI preference fine-tuning: input.messages / preferred_output / non_preferred_output",
    ("unpaired", "trl"): "TRL unpaired preference (KTO, BCO): prompt / completion / label",
    ("sft", "trl"): "TRL supervised fine-tuning: prompt / completion, or messages in conversational form",
    ("sft", "openai"): "OpenAI chat fine-tuning: messages",
    ("reward", "trl"): "Reward table for regression reward models: prompt / response / score (0..1)",
}


def write_card(directory: Path, summary: dict[str, Any], rules: str) -> Path:
    """Record ``summary`` (a DatasetSummary as JSON) and rewrite README.md; returns its path."""
    state_path = directory / _STATE
    state: dict[str, Any] = {}
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
    state[summary["kind"]] = {"summary": summary, "rules": rules}
    state_path.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    card = directory / "README.md"
    card.write_text(_render(state), encoding="utf-8")
    return card


def _render(state: dict[str, Any]) -> str:
    lines = ["---", "configs:"]
    for kind in sorted(state):
        summary = state[kind]["summary"]
        lines.append(f"- config_name: {kind}")
        lines.append("  data_files:")
        for split, path in sorted(summary["files"].items(), key=lambda kv: kv[0] != "train"):
            lines.append(f"  - split: {split}")
            lines.append(f"    path: {Path(path).name}")
    lines += ["tags:", "- rlhf", "- trl", "---", "", "# RLHF training data", ""]
    lines.append("Built by rlhfkit from logged LLM interactions and the human feedback on them.")
    lines.append("")
    lines.append("| kind | form | train | test |")
    lines.append("|---|---|---|---|")
    for kind in sorted(state):
        s = state[kind]["summary"]
        form = _FORMS.get((kind, s["target"]), kind)
        lines.append(f"| {kind} | {form} | {s['counts'].get('train', 0)} | {s['counts'].get('test', 0)} |")
    for kind in sorted(state):
        lines += _kind_section(kind, state[kind]["summary"], state[kind]["rules"])
    return "\n".join(lines) + "\n"


def _kind_section(kind: str, s: dict[str, Any], rules: str) -> list[str]:
    form = "conversational" if s["conversational"] or s["target"] == "openai" else "standard"
    lines = ["", f"## {kind}", "", f"{_FORMS.get((kind, s['target']), kind)}; {form} form, {s['format']} files.", ""]
    lines.append(s["message"])
    lines += ["", "| split | rows | file |", "|---|---|---|"]
    for split in ("train", "test"):
        file = Path(s["files"][split]).name if split in s["files"] else "-"
        lines.append(f"| {split} | {s['counts'].get(split, 0)} | {file} |")
    lines += ["", "### Rules and thresholds", ""]
    lines += [f"- `{name}` = `{value}`" for name, value in sorted(s["options"].items())]
    lines += ["", rules.strip(), ""]
    lines += ["### Source", ""]
    lines.append(f"- feedback read: {s['feedback_read']}; interactions read: {s['interactions_read']}")
    if s.get("start_time"):
        lines.append(f"- interactions from {s['start_time']} to {s['end_time']}")
    else:
        lines.append("- time range: none (no examples)")
    if s["models"]:
        lines += ["", "| model | responses used |", "|---|---|"]
        lines += [f"| {model} | {count} |" for model, count in sorted(s["models"].items(), key=lambda kv: -kv[1])]
    lines += _counter_table("Skipped interactions", "reason", s["skipped"])
    lines += _counter_table("Feedback not used", "reason", s["unused_feedback"])
    lines += _counter_table("Pairs, duplicates and contradictions", "what", s["notes"])
    return lines


def _counter_table(title: str, label: str, counts: dict[str, int]) -> list[str]:
    lines = ["", f"### {title}", ""]
    if not counts:
        return [*lines, "None."]
    lines += [f"| {label} | count |", "|---|---|"]
    lines += [f"| {reason} | {count} |" for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return lines
