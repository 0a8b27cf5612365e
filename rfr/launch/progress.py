"""What a launch tells a person while it runs, and the record it leaves.

Every stage that starts, ends or fails is one line (with its log file), above a tqdm bar
of stages done; the same events go to ``launch.log`` in the log folder, and
``launch.json`` keeps each stage's outcome, so a launch that ended overnight can be read
in the morning."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from rfr.atomic import write_json_atomic

Outcome = Literal["done", "failed", "skipped"]
log = logging.getLogger("rfr.launch")


@dataclass
class StageResult:
    stage: str
    outcome: Outcome
    returncode: int | None
    seconds: float
    log: str
    worker: str


class Progress:
    """Thread-safe event lines, a bar of stages done, and the outcome record."""

    def __init__(self, log_dir: Path, total: int, show_bar: bool = True) -> None:
        self.log_dir = log_dir
        self.results: list[StageResult] = []
        self._lock = threading.Lock()
        self._file = open(log_dir / "launch.log", "a", encoding="utf-8")  # noqa: SIM115
        self._bar = None
        if show_bar and total:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc="launch", unit="stage", dynamic_ncols=True)

    def say(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self._bar is not None:
                self._bar.write(line)
            else:
                print(line, flush=True)

    def started(self, stage: str, worker: str, log_path: Path) -> None:
        self.say(f"run     {stage} on {worker} (log {log_path})")

    def ended(self, result: StageResult) -> None:
        word = {"done": "done   ", "failed": "FAILED ", "skipped": "skipped"}[result.outcome]
        detail = (f"exit {result.returncode}, " if result.outcome == "failed" else "")
        self.say(f"{word} {result.stage} ({detail}{result.seconds:.1f} s, log {result.log})")
        with self._lock:
            self.results.append(result)
            if self._bar is not None:
                self._bar.update(1)

    def failed(self) -> list[StageResult]:
        return [r for r in self.results if r.outcome != "done"]

    def close(self, summary: dict) -> Path:
        if self._bar is not None:
            self._bar.close()
        self._file.close()
        return write_json_atomic(self.log_dir / "launch.json",
                                 {**summary, "stages": [asdict(r) for r in self.results]},
                                 indent=2)
