"""Execute the notebooks in this folder headless, as CI does, and fail loudly.

Usage::

    # every notebook, against the CI smoke profile's results
    .venv/bin/python notebooks/run.py --results smoke/results --out /tmp/nb
    # one notebook, untrained and small (as tests/test_notebooks.py runs it)
    RFR_CHECKPOINT=none RFR_WALKTHROUGH_SIZE=64 \
        .venv/bin/python notebooks/run.py --out /tmp/nb rfr_walkthrough.ipynb

Why a script and not ``jupyter nbconvert --execute``: it pins the kernel to *this*
interpreter (a ``python3`` kernelspec elsewhere on the machine, e.g. in ``~/.local``,
would otherwise win and run the notebooks without the project installed). It also runs every
notebook with ``notebooks/`` as the working directory and passes ``RFR_RESULTS`` as an
absolute path. It writes the executed copies to ``--out`` only, never over the committed
notebooks, which are kept without outputs. It prints the time per notebook and exits 1
with the failing cell's error when a cell fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets import default

NOTEBOOKS_DIR = Path(__file__).resolve().parent
KERNEL_NAME = "python3"


class ThisInterpreterSpecs(KernelSpecManager):
    """Every ``python3`` kernel is ipykernel run by ``sys.executable``, the interpreter
    running this script (the project's virtualenv), whatever kernelspecs are installed."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name != KERNEL_NAME:
            return super().get_kernel_spec(kernel_name)
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python 3 ({sys.executable})",
            language="python",
            metadata={},
        )


class ThisInterpreterKernel(KernelManager):
    """A kernel manager with `ThisInterpreterSpecs`. nbclient creates one per notebook from
    this class, and so also shuts the kernel down (it leaves a kernel manager passed in as
    an instance running)."""

    @default("kernel_spec_manager")
    def _this_interpreter_specs(self) -> KernelSpecManager:
        return ThisInterpreterSpecs(data_dir=self.data_dir)


def find_notebooks(names: list[str]) -> list[Path]:
    """All notebooks of this folder (sorted) when none is named; else each name as a path,
    or as a file name in this folder."""
    if not names:
        return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    paths = []
    for name in names:
        path = Path(name) if Path(name).is_file() else NOTEBOOKS_DIR / name
        if not path.is_file():
            raise SystemExit(f"no notebook {name} (nor {NOTEBOOKS_DIR / name})")
        paths.append(path.resolve())
    return paths


def failing_cell(nb: nbformat.NotebookNode) -> tuple[int, str] | None:
    """(index, source) of the first code cell whose outputs hold an error."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.get("output_type") == "error"
                                            for o in cell.get("outputs", [])):
            return index, cell.source
    return None


def execute(path: Path, out_dir: Path, timeout: int) -> str | None:
    """Run one notebook; write the executed copy to ``out_dir``; return the error or None."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME,
                            kernel_manager_class=ThisInterpreterKernel,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    error = None
    try:
        client.execute()
    except CellTimeoutError as exc:
        error = f"a cell ran longer than {timeout} s: {exc}"
    except CellExecutionError as exc:
        error = str(exc)
    except DeadKernelError as exc:
        error = f"the kernel died: {exc}"
    except RuntimeError as exc:  # e.g. "Kernel didn't respond in 60 seconds"
        error = f"the kernel could not be used: {exc}"
    finally:
        nbformat.write(nb, out_dir / path.name)  # also the partial run, for inspection
    if error is not None:
        cell = failing_cell(nb)
        if cell is not None:
            error = f"cell {cell[0]} failed:\n{cell[1]}\n\n{error}"
    return error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*",
                        help="notebooks to run, as paths or file names in notebooks/ "
                        "(default: every notebook in notebooks/)")
    parser.add_argument("--results", help="results folder for the notebooks (sets "
                        "RFR_RESULTS; relative to the current directory)")
    parser.add_argument("--out", required=True, help="folder for the executed copies")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)

    paths = find_notebooks(args.notebooks)
    out_dir = Path(args.out).resolve()
    if out_dir in {path.parent for path in paths} | {NOTEBOOKS_DIR}:
        parser.error(f"--out {out_dir} holds the notebooks themselves: the executed copies "
                     f"must not overwrite them (committed notebooks stay without outputs)")
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.results is not None:
        results = Path(args.results).resolve()
        if not results.is_dir():
            parser.error(f"--results {results} is not a folder")
        os.environ["RFR_RESULTS"] = str(results)  # the kernel inherits this environment
    elif os.environ.get("RFR_RESULTS"):
        os.environ["RFR_RESULTS"] = str(Path(os.environ["RFR_RESULTS"]).resolve())

    print(f"kernel: {sys.executable}; results: {os.environ.get('RFR_RESULTS', '(default)')}")
    failures = []
    for path in paths:
        start = time.perf_counter()
        error = execute(path, out_dir, args.timeout)
        seconds = time.perf_counter() - start
        print(f"{'FAIL' if error else 'ok  '} {path.name}: {seconds:.1f} s "
              f"-> {out_dir / path.name}", flush=True)
        if error:
            failures.append((path.name, error))
    for name, error in failures:
        print(f"\n===== {name} =====\n{error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
