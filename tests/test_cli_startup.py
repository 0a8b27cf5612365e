"""The command line starts without torch: ``rfr --help``, each verb's ``--help`` and
``rfr --version`` only build the parser, and ``import rfr.cli`` loads the torch-free
``rfr.errors`` (each verb imports its library inside its ``cmd_*`` function).

Everything runs in a fresh interpreter: this test session has long imported torch.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import pytest

HEAVY = ("torch", "numpy", "PIL", "yaml")
HELP_SECONDS = 2.0  # `rfr --help` takes ~0.2 s; the margin is for a busy CI machine


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    return done.stdout.strip()


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rfr.cli", *argv], capture_output=True,
                          text=True, check=False, timeout=120)


def test_importing_the_cli_does_not_import_torch():
    assert run_python("import sys, rfr.cli; print('torch' in sys.modules)") == "False"


@pytest.mark.parametrize("module", ["rfr", "rfr.errors", "rfr.cli"])
def test_light_modules_import_nothing_heavy(module):
    loaded = run_python(f"import sys, {module}; "
                        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    assert loaded == "", f"import {module} loads {loaded}"


def test_help_lists_the_verbs():
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: rfr")
    for verb in ("inpaint", "evaluate", "train", "report", "launch", "--version"):
        assert verb in done.stdout


def test_version():
    try:
        expected = version("rfr-bench")
    except PackageNotFoundError:
        expected = "unknown"
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"rfr {expected}"


def test_every_verb_help_works_without_torch():
    """One interpreter runs ``--help`` of every verb, then reports whether torch came in."""
    code = r"""
import contextlib, io, re, sys
from rfr.cli import build_parser
verbs = re.search(r"\{([\w,-]+)\}", build_parser().format_usage()).group(1).split(",")
for verb in verbs:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            build_parser().parse_args([verb, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, (verb, exc.code)
    assert out.getvalue().startswith(f"usage: rfr {verb}"), (verb, out.getvalue()[:80])
print(len(verbs), 'torch' in sys.modules)
"""
    count, torch_loaded = run_python(code).split()
    assert int(count) >= 13
    assert torch_loaded == "False"


def test_help_is_fast():
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        done = run_cli("--help")
        seconds.append(time.perf_counter() - start)
        assert done.returncode == 0, done.stderr
    median = statistics.median(seconds)
    print(f"rfr --help: median {median:.3f} s of {', '.join(f'{s:.3f}' for s in seconds)}")
    assert median < HELP_SECONDS
