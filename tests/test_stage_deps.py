"""Each DVC stage declares exactly the code it runs: the import closure of its verb.

A stage whose command imports a module it does not declare goes stale silently: change
that module and ``dvc status`` still says the results are up to date. A module it
declares but never imports reruns the stage for nothing. So for every stage of
``dvc.yaml`` this test computes the import closure, inside ``rfr/`` and ``baselines/``,
of the ``rfr`` verb its command runs, and compares it with the stage's code deps in both
directions.

The closure is computed from the source (``ast``), conservatively:
- ``rfr/cli.py`` is entered at the verb's ``cmd_<verb>`` function: its module-level
  imports, the imports inside that function and inside every function of ``cli.py`` it
  calls; plus the package ``rfr/__init__.py``, which Python runs first;
- every other module contributes all its imports, at module level or inside functions
  (a function-level import runs in some branch: the stage may run it), and every string
  constant that names one of the suite's modules (``importlib.import_module`` tables);
- importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``.

A directory dep (``rfr/data``) stands for every ``.py`` file below it. Data files that
the code reads (``ablations/variants.yaml``, read by ``rfr/model/variants.py``) are checked the
same way through ``DATA_READ_BY``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rfr", "baselines")
VERB = re.compile(r"^rfr\s+([\w-]+)")
# Files read at run time by a module, which a stage that imports the module must declare.
DATA_READ_BY = {"rfr.model.variants": "ablations/variants.yaml"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES
            for path in sorted((ROOT / package).rglob("*.py"))}


def loaded_by(name: str) -> set[str]:
    """The suite's modules that ``import name`` runs: the module and its packages."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(modules())


def imports_in(node: ast.AST, module: str) -> set[str]:
    """Every suite module that the code under ``node`` (in ``module``) may import."""
    is_package = modules()[module].name == "__init__.py"
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            for alias in sub.names:
                found |= loaded_by(alias.name)
        elif isinstance(sub, ast.ImportFrom):
            if sub.level:
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - (sub.level - 1)]
                source = ".".join([*base, *([sub.module] if sub.module else [])])
            else:
                source = sub.module or ""
            found |= loaded_by(source)
            for alias in sub.names:  # ``from package import submodule``
                if f"{source}.{alias.name}" in modules():
                    found |= loaded_by(f"{source}.{alias.name}")
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) \
                and sub.value in modules():
            found |= loaded_by(sub.value)
    return found


@cache
def module_imports(name: str) -> frozenset[str]:
    return frozenset(imports_in(ast.parse(modules()[name].read_text()), name))


def verb_entry(verb: str) -> set[str]:
    """What running ``rfr <verb>`` imports from ``rfr/cli.py`` (see the module doc)."""
    tree = ast.parse(modules()["rfr.cli"].read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    found = {"rfr", "rfr.cli"}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            found |= imports_in(node, "rfr.cli")
    todo, seen = [f"cmd_{verb.replace('-', '_')}"], set()
    assert todo[0] in functions, f"rfr/cli.py has no {todo[0]} for the verb {verb!r}"
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found |= imports_in(functions[name], "rfr.cli")
        todo += [sub.id for sub in ast.walk(functions[name])
                 if isinstance(sub, ast.Name) and sub.id in functions]
    return found


def closure(verb: str) -> set[str]:
    seen: set[str] = set()
    todo = list(verb_entry(verb))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name != "rfr.cli":  # entered at the verb's function only
            todo += module_imports(name) - seen
    return seen


def closure_files(verb: str) -> set[str]:
    return {str(modules()[name].relative_to(ROOT)) for name in closure(verb)}


def declared_code(deps: Iterable[str]) -> tuple[set[str], set[str]]:
    """(code files the deps stand for, other deps), code = .py under the packages."""
    code, other = set(), set()
    for dep in deps:
        path = ROOT / dep
        if dep.split("/")[0] not in PACKAGES:
            other.add(dep)
        elif path.is_dir():
            code |= {str(p.relative_to(ROOT)) for p in path.rglob("*.py")}
        else:
            code.add(dep)
    return code, other


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def suggestion(files: set[str]) -> str:
    """The deps to declare for ``files``: whole folders where every file is needed."""
    chosen = set(files)
    for folder in sorted({str(Path(f).parent) for f in files}, key=len):
        if folder in PACKAGES[:1]:
            continue
        every = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py")}
        if every <= chosen and not any(folder.startswith(c + "/") for c in chosen):
            chosen = (chosen - every) | {folder}
    return "\n".join(f"      - {dep}" for dep in sorted(chosen))


def test_the_closure_follows_function_level_and_string_imports():
    train = closure("train")
    assert {"rfr.train.loop", "rfr.train.losses", "rfr.weights", "rfr.model.checkpoint"} <= train
    # baselines are imported inside builder functions and through a string table
    assert {"baselines.pconv", "baselines.encoder_decoder"} <= train
    # the training stage must not depend on evaluation code (only on its config, which the
    # profile schema checks), nor the masks stage on models' training: the closure is per
    # verb, not all of rfr/cli.py
    evaluation = {m for m in train if m.startswith(("rfr.evaluate", "rfr.report"))}
    assert evaluation == {"rfr.evaluate", "rfr.evaluate.config"}
    assert "rfr.train.loop" not in closure("masks")
    assert {"rfr.masks", "rfr.evaluate.aggregate", "rfr.evaluate.metrics"} <= closure("report")


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_declares_exactly_the_code_its_verb_imports(stage):
    definition = stages()[stage]
    definition = definition.get("do", definition)  # a foreach stage's body
    verb = VERB.match(definition["cmd"]).group(1)
    code, other = declared_code(definition.get("deps", []))
    needed = closure_files(verb)
    missing, extra = sorted(needed - code), sorted(code - needed)
    assert not missing and not extra, (
        f"stage {stage} (rfr {verb}): deps miss {missing} and declare unused {extra}; "
        f"its code deps should be:\n{suggestion(needed)}")
    for module, data_file in DATA_READ_BY.items():
        if module in closure(verb):
            assert data_file in other, f"stage {stage} imports {module}, which reads " \
                                       f"{data_file}: declare it"
