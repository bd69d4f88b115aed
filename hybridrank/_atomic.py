"""Writers that leave the previous complete state or the new one, never a mix.

A directory is built beside its target and swapped in by rename; a file is
written to a temporary sibling and renamed. A kill at any moment therefore
leaves the old complete directory (or file) or the new one.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrank.errors import OutputExistsError, OutputNotWritableError

logger = logging.getLogger(__name__)

#: Files only hybridrank's own outputs hold (a dataset, a run or bundle, an experiment,
#: a neural run, a saved model): a folder holding one is output of another kind.
HYBRIDRANK_MARKERS = ("dataset.yaml", "manifest.json", "hybrid.json", "info.json", "folds.json",
                      "ranker.json")  # fmt: skip


@contextmanager
def staged_directory(
    out: str | Path, *, markers: Sequence[str], require_all: bool = False
) -> Iterator[Path]:
    """A fresh sibling directory that replaces ``out`` when the block ends without error.

    Args:
        out: The target directory.
        markers: File names that identify a directory this kind of writer
            made (``manifest.json``, ``dataset.yaml``, ...). An existing,
            non-empty ``out`` holding none of them is refused, so a typo in
            ``--out`` cannot delete a user's folder. The new directory must
            hold the first marker, written last.
        require_all: ``out`` must hold every marker, not one of them: for
            writers whose markers, one by one, other kinds of output hold too
            (a world dataset and a GBDT run both hold ``config.yaml``).

    Raises:
        OutputExistsError: ``out`` exists and is not such a directory.
    """
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(target, markers[0])
    check_output_dir(target, markers=markers, require_all=require_all)
    _remove_stale_siblings(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not (tmp / markers[0]).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"staged directory for {target} lacks {markers[0]}; nothing replaced")
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def staging_directory(target: str | Path) -> Path:
    """A new, empty ``.NAME.tmp-PID`` sibling of ``target`` for a writer that builds a
    directory and renames it into place itself (killed writers' siblings are removed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def check_output_dir(
    out: str | Path, *, markers: Sequence[str], require_all: bool = False
) -> None:
    """Refuse an output directory that a writer with these ``markers`` may not replace.

    Commands call it before their work starts, so a taken ``--out`` fails at
    once rather than after the training; :func:`staged_directory` calls it again.

    Raises:
        OutputExistsError: ``out`` is a file, or a non-empty directory holding
            none of ``markers`` (with ``require_all``: not all of them), so not
            written by this kind of command.
    """
    target = Path(out)
    check_writable(target)
    if target.exists() and not _replaceable(target, markers, require_all=require_all):
        ours = [*HYBRIDRANK_MARKERS, *(markers if require_all else ())]
        if target.is_dir() and any((target / m).exists() for m in ours):
            raise OutputExistsError(
                f"{target}: exists and holds another kind of output (not all of "
                f"{list(markers)}); refusing to replace it: choose another path or remove it"
            )
        what = "a file" if not target.is_dir() else f"none of {list(markers)} in it"
        raise OutputExistsError(
            f"{target}: exists and was not written by hybridrank ({what}); "
            "refusing to replace it: choose another path or remove it"
        )


def check_writable(target: str | Path) -> None:
    """Refuse an output path whose nearest existing folder cannot be written (a read-only
    disk, no permission), before any work rather than after it.

    Raises:
        OutputNotWritableError: That folder is not writable.
    """
    folder = Path(target).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise OutputNotWritableError(
            f"{target}: cannot write in {folder} (read-only or no permission)"
        )


def check_output_file(path: str | Path) -> None:
    """Refuse an output file path that is an existing directory (or cannot be written).

    Raises:
        OutputExistsError: ``path`` is a directory.
        OutputNotWritableError: Its folder cannot be written.
    """
    check_writable(path)
    if Path(path).is_dir():
        raise OutputExistsError(
            f"{path}: is a directory; give a file path to write (for example {Path(path) / 'out'})"
        )


def _remove_stale_siblings(target: Path) -> None:
    """Remove the staging and moved-aside siblings that killed writers left behind.

    Only those of processes that are gone; a live writer's staging is its own.
    (:func:`recover_directory` runs first: a complete one becomes the target.)
    """
    for prefix in (f".{target.name}.tmp-", f".{target.name}.old-"):
        for sibling in target.parent.glob(prefix + "*"):
            if _dead_writer(sibling):
                if sibling.is_dir() and not sibling.is_symlink():
                    shutil.rmtree(sibling, ignore_errors=True)
                else:
                    sibling.unlink(missing_ok=True)


def _dead_writer(sibling: Path) -> bool:
    """Whether a ``.NAME.tmp-PID`` / ``.NAME.old-PID`` sibling's writer is gone.

    Our own pid counts as gone: these helpers run before this process starts its
    own swap of that path, so such a sibling is a killed earlier run's that had
    the same pid (a container's command is often pid 1 every time).
    """
    pid = sibling.name.rsplit("-", 1)[-1]
    return pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid)))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _replaceable(target: Path, markers: Sequence[str], *, require_all: bool = False) -> bool:
    if not target.is_dir():
        return False
    if not any(target.iterdir()):
        return True
    present = [(target / m).exists() for m in markers]
    return all(present) if require_all else any(present)


def recover_directory(target: Path, marker: str) -> None:
    """Finish a swap that a kill interrupted between its two renames.

    A staging directory holding ``marker`` is complete (the marker is written
    last): it becomes the target. Otherwise the moved-aside old one is put back.
    Only a writer that is gone is finished for: a live one is between its two
    renames and completes its own swap.
    """
    if target.exists() or not target.parent.exists():
        return
    for prefix in (f".{target.name}.tmp-", f".{target.name}.old-"):
        for candidate in sorted(target.parent.glob(prefix + "*")):
            if _dead_writer(candidate) and (candidate / marker).exists():
                logger.warning("%s: completing an interrupted write from %s", target, candidate.name)
                os.replace(candidate, target)
                return


def _file_temporary(p: Path) -> Path:
    """This process's temporary sibling of ``p``; killed writers' ones are removed first."""
    p.parent.mkdir(parents=True, exist_ok=True)
    for sibling in p.parent.glob(f".{p.name}.tmp-*"):
        if _dead_writer(sibling) and not sibling.is_dir():
            sibling.unlink(missing_ok=True)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file whole or not at all (an existing directory there is refused)."""
    p = Path(path)
    check_output_file(p)
    tmp = _file_temporary(p)
    try:
        tmp.write_text(text)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves no temporary behind


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a parquet file whole or not at all (an existing directory there is refused)."""
    p = Path(path)
    check_output_file(p)
    tmp = _file_temporary(p)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves no temporary behind


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110, **savefig: Any) -> Path:
    """Save a matplotlib figure whole or not at all (format from the path's suffix), then
    close it (pyplot keeps every open figure alive)."""
    import matplotlib.pyplot as plt

    p = Path(path)
    tmp = _file_temporary(p)
    try:
        fig.savefig(tmp, dpi=dpi, format=p.suffix.lstrip(".") or "png", **savefig)
    finally:
        plt.close(fig)
    os.replace(tmp, p)
    return p


__all__ = [
    "recover_directory",
    "save_figure",
    "staged_directory",
    "staging_directory",
    "write_parquet",
    "write_text",
]
