"""Kill a writer at chosen points of its file-system work, many times, from one warm process.

Run as ``python -m tests.crash._zygote SPEC.json``. The process imports every
module once (the "zygote"), then for each kill point forks a child that runs
the writer on a fresh copy of the previous state and SIGKILLs itself at its
k-th file-system mutation (before or after the operation: each operation is
two points). The zygote itself never trains or encodes anything, so its
children start without thread pools (forking after OpenMP or torch threads
started can deadlock).

Mutations counted: ``os.replace``, ``os.rename``, ``shutil.rmtree``,
``shutil.copytree``, ``Path.write_text``, ``Path.write_bytes``, ``Path.mkdir``,
``os.mkdir``, ``DataFrame.to_parquet`` and ``open`` for writing.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tests.crash import writers

_counter = {"n": 0, "kill_at": -1}


def _point() -> None:
    _counter["n"] += 1
    if _counter["n"] == _counter["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: Any, name: str) -> None:
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _point()
        out = original(*args, **kwargs)
        _point()
        return out

    setattr(owner, name, wrapped)


def _arm(kill_at: int) -> None:
    _counter.update(n=0, kill_at=kill_at)
    for owner, name in (
        (os, "replace"), (os, "rename"), (os, "mkdir"), (shutil, "rmtree"), (shutil, "copytree"),
        (Path, "write_text"), (Path, "write_bytes"), (Path, "mkdir"), (pd.DataFrame, "to_parquet"),
    ):  # fmt: skip
        _wrap(owner, name)
    original_open = builtins.open

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        writing = any(c in mode for c in "wax+")
        if writing:
            _point()
        return original_open(file, mode, *args, **kwargs)

    builtins.open = counting_open  # type: ignore[assignment]


def _run_child(run: Callable[[Path], None], target: Path, kill_at: int, count_file: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            _arm(kill_at)
            run(target)
            fd = os.open(count_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # not a counted call
            os.write(fd, str(_counter["n"]).encode())
            os.close(fd)
        except BaseException as exc:
            sys.stderr.write(f"writer failed: {type(exc).__name__}: {exc}\n")
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    writer = writers.make(spec["writer"], spec["params"])
    root = Path(spec["root"])
    previous = Path(spec["previous"])
    results: dict[str, Any] = {"points": {}}
    # An uninterrupted run counts the mutation points.
    clean = root / "clean" / "target"
    if previous.exists():
        shutil.copytree(previous, clean)
    count_file = root / "clean.count"
    results["clean_status"] = _run_child(writer.run, clean, -1, count_file)
    total = int(count_file.read_text()) if count_file.exists() else 0
    results["total_points"] = total
    import numpy as np

    rng = np.random.default_rng(spec.get("seed", 0))
    n = min(spec["kills"], total)
    # The first and the last point always (a kill before anything and one after the
    # final rename: the old state and the new), the others a seeded draw between them.
    ends = [1, total][:n] if total > 1 else [1]
    inner = np.arange(2, total)
    drawn = rng.choice(inner, size=min(n - len(ends), inner.size), replace=False)
    points = sorted({*ends, *(int(k) for k in drawn)})
    for k in points:
        target = root / f"k{k}" / "target"
        if previous.exists():
            shutil.copytree(previous, target)
        else:
            target.parent.mkdir(parents=True)
        status = _run_child(writer.run, target, k, root / f"k{k}.count")
        results["points"][str(k)] = status
    (root / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
