"""Where the default collection comes from: a path, the environment, ../shared, or a download."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tqdm.auto import tqdm

from hybridrank.errors import ChecksumError, MissingInputError

logger = logging.getLogger(__name__)

DATA_ENV = "HYBRIDRANK_DATA"
CACHE_ENV = "HYBRIDRANK_CACHE"
NFCORPUS_URL = "https://www.cl.uni-heidelberg.de/statnlpgroup/nfcorpus/nfcorpus.tar.gz"

# SHA-256 of the release files hybridrank reads, taken from the original
# NFCorpus archive. A download whose files differ is rejected.
NFCORPUS_SHA256: Mapping[str, str] = {
    "dev.3-2-1.qrel": "bb7048b9c7b029da5fe3a6f537f8be6e9e291554997c6face817d99c993c6c75",
    "dev.docs": "b7cf623af8f991e9d006d901a585234da65b0560a215e3bee85f884946b39751",
    "dev.nontopic-titles.queries": "377315480fa06c29cc9edc05288ca31e18fa4a15529c65eb50b6fe34a39954f8",
    "dev.titles.queries": "548d2deef61bdc5a9db538f12679c503eb1b117c8ad7d8517493fdb4d5741ca6",
    "dev.vid-desc.queries": "3c64279be6b80f0ba393a27d370ee02a524344201d1420540b7f82f099e990e3",
    "dev.vid-titles.queries": "5f363df504a6be5a35307433cc3f8694a8b184215a5ac9769a192f185120ef1e",
    "test.3-2-1.qrel": "da94251f365be353ca30f15a46956b6e94dea5deac4d9174668cfa46f1b96b07",
    "test.docs": "9d779d34db160e63a92a6b753ac79bcbc80d0f04dd01bdde71f38e98d6ad1f16",
    "test.nontopic-titles.queries": "57984936460c5286c6f6e2c2ef1601f2deb9342d4e310a60a0f9a1b5bb8cea66",
    "test.titles.queries": "be3c7287d8784ab6f24e215693cdb0716468ff090252147415abe26a056a2648",
    "test.vid-desc.queries": "9cdcdb4ee0f20d19a8751380fd8ed70c4ade55c256989f6c61a0e3e6c6a9daca",
    "test.vid-titles.queries": "01cea991395121faba4b1a37c4ab8e29b1205aaa5a9b9a037c40876ab5409d8d",
    "stopwords.large": "5804735a69882f32c1436222322f33797473f333de337ca9f8fdaf4af325a60b",
}


def default_cache_dir() -> Path:
    """``$HYBRIDRANK_CACHE``, else ``$XDG_CACHE_HOME/hybridrank``, else ``~/.cache/hybridrank``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hybridrank"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(root: Path, checksums: Mapping[str, str]) -> None:
    """Raise :class:`ChecksumError` unless every named file exists with its hash."""
    for name, expected in checksums.items():
        path = root / name
        if not path.exists():
            raise ChecksumError(f"{path}: missing from the downloaded archive")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"{path}: sha256 {actual} does not match the pinned {expected}; "
                "delete the cache directory and download again"
            )


def fetch_nfcorpus(
    cache_dir: Path | None = None,
    *,
    url: str = NFCORPUS_URL,
    checksums: Mapping[str, str] = NFCORPUS_SHA256,
) -> Path:
    """Download and unpack the NFCorpus release once; return its directory.

    The archive is unpacked into ``cache_dir/nfcorpus`` and every file that
    hybridrank reads is checked against its pinned SHA-256. A later call finds
    the checked copy and downloads nothing. A half-finished download never
    replaces a good copy: unpacking happens in a temporary directory that is
    renamed into place only after the checks pass.
    """
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / "nfcorpus"
    stamp = target / ".verified"
    if stamp.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".nfcorpus-") as tmp:
        archive = Path(tmp) / "nfcorpus.tar.gz"
        logger.info("downloading NFCorpus from %s", url)
        _download(url, archive)
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(unpacked, filter="data")
        root = _find_release_root(unpacked)
        verify_files(root, checksums)
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)
    stamp.write_text("ok\n")
    return target


def _download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="NFCorpus", leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))


def _find_release_root(unpacked: Path) -> Path:
    for candidate in sorted(unpacked.rglob("dev.docs")):
        return candidate.parent
    raise ChecksumError(f"{unpacked}: the archive holds no dev.docs; is it the NFCorpus release?")


def shared_datasets_dir() -> Path | None:
    """``../shared/datasets`` beside the checkout or the working directory, if present."""
    repo_root = Path(__file__).resolve().parents[2]
    for base in (repo_root, Path.cwd()):
        candidate = (base / ".." / "shared" / "datasets").resolve()
        if candidate.is_dir():
            return candidate
    return None


def resolve_nfcorpus_dir(data: str | Path | None = None, *, download: bool = True) -> Path:
    """Find NFCorpus: ``data``, else ``$HYBRIDRANK_DATA``, else ../shared, else download.

    ``data`` (and the environment variable) may name the NFCorpus directory
    itself or a datasets directory holding ``nfcorpus/``.
    """
    for given, origin in (
        (data, "--data or world.data.path"),
        (os.environ.get(DATA_ENV), f"${DATA_ENV}"),
    ):
        if given:
            path = Path(given)
            for candidate in (path, path / "nfcorpus"):
                if (candidate / "dev.docs").exists():
                    return candidate
            what = "no such directory" if not path.is_dir() else "no NFCorpus files (dev.docs) "
            what += "" if not path.is_dir() else "and no TREC or BEIR collection files there"
            raise MissingInputError(f"{origin} {path}: {what}")
    shared = shared_datasets_dir()
    if shared is not None and (shared / "nfcorpus" / "dev.docs").exists():
        return shared / "nfcorpus"
    if not download:
        raise MissingInputError("NFCorpus not found locally and downloading was disabled")
    return fetch_nfcorpus()
