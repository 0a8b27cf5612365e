"""The folders of ``rfr/`` follow the pipeline, and the imports go one way along it.

data -> masks -> model -> train -> evaluate -> report: a step may import the steps before
it, never one after it, and no step imports the orchestration around them (the pipeline,
the profile schema, the launcher, the command line). This is what lets a DVC stage depend
on little code (the report reads evaluation files, not models), and what the README's
tree promises a newcomer. The one exception is lazy and stated: a training config
validates ``-S`` overrides with ``rfr.overrides`` (config machinery, no step code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("data", "masks", "model", "train", "evaluate", "report")
ORCHESTRATION = ("pipeline", "profile_schema", "cli", "launch", "overrides")
ALLOWED = {("rfr/train/config.py", "rfr.overrides")}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def step_files() -> list[Path]:
    return sorted(path for step in STEPS for path in (ROOT / "rfr" / step).rglob("*.py"))


def test_every_step_is_a_package() -> None:
    for step in STEPS:
        assert (ROOT / "rfr" / step / "__init__.py").is_file(), step


@pytest.mark.parametrize("path", step_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_step_imports_only_the_steps_before_it(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    position = STEPS.index(path.relative_to(ROOT / "rfr").parts[0])
    wrong = []
    for module in imported_modules(path):
        parts = module.split(".")
        if parts[0] != "rfr" or len(parts) < 2 or (relative, module) in ALLOWED:
            continue
        if parts[1] in STEPS and STEPS.index(parts[1]) > position:
            wrong.append(f"{module} (a later step)")
        elif parts[1] in ORCHESTRATION:
            wrong.append(f"{module} (orchestration)")
    assert not wrong, f"{relative} imports {wrong}"


def test_the_checker_sees_a_backward_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from rfr.report.inputs import RunFiles\nimport rfr.pipeline\n")
    assert {"rfr.report.inputs", "rfr.pipeline"} <= imported_modules(sample)
