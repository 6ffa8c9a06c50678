"""Fetch the official dataset files, verified against published checksums, into a local root.

`download(name, root)` puts every file of `REMOTE[name]` under `dataset_dir(root, name)` using
pooch: each file is streamed to a temporary file beside its destination and only moved into
place once its checksum matches, so a bad or interrupted download never sits at the final path.
A file already at the final path with the right checksum is not fetched again; one with the
wrong checksum is reported, never overwritten. CelebA and LSUN cannot be fetched by a script
(Google Drive quotas, archives of many gigabytes): `is_manual` names them and `manual_instructions`
says where to get them and where to put them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pooch
import requests

from dcgan.data.specs import SPECS, RemoteFile
from dcgan.errors import DataError
from dcgan.progress import bar as progress_bar

# Generous, because the official hosts are slow; it bounds each read, not the whole download.
TIMEOUT_S = 60
# Large chunks keep Python's per-chunk overhead small on the 1.3 GB SVHN extra file.
CHUNK_BYTES = 1 << 20


# What each downloadable set's files are, and how the others are fetched by hand: `specs`.
REMOTE: dict[str, tuple[RemoteFile, ...]] = {n: s.remote for n, s in SPECS.items() if s.remote}
MANUAL: dict[str, str] = {n: s.manual for n, s in SPECS.items() if s.manual}


def dataset_dir(root: str | Path, name: str) -> Path:
    """Where `download` puts dataset `name`'s files (and where the loaders look for them)."""
    return Path(root).expanduser() / name


def is_manual(name: str) -> bool:
    """True for datasets that must be fetched by hand (see `manual_instructions`)."""
    return name in MANUAL


def manual_instructions(name: str, root: str | Path) -> str:
    """The multi-line instructions for fetching manual dataset `name` and placing it under
    `root`."""
    if not is_manual(name):
        raise DataError(f"{name!r} has no manual instructions; manual datasets: {_names(MANUAL)}")
    return MANUAL[name].format(root=Path(root).expanduser())


def download(
    name: str,
    root: str | Path,
    *,
    files: Iterable[str] | None = None,
    progress: bool = False,
    remote: Mapping[str, tuple[RemoteFile, ...]] = REMOTE,
) -> list[Path]:
    """Fetch dataset `name` into `dataset_dir(root, name)` and return the local file paths.

    `files` picks files by name; by default every non-optional file is fetched (for SVHN: train
    and test, not the 1.3 GB extra). `progress` shows a tqdm bar per file. `remote` replaces
    the registry of official files (tests point it at a local server).

    Raises DataError (one line) for an unknown dataset, a manual one, a file that no mirror
    could serve, a download whose checksum does not match, or a file already at the
    destination whose checksum does not match.
    """
    # pooch logs every fetch at INFO; the progress bar is all the chatter a user needs.
    pooch.get_logger().setLevel(logging.WARNING)
    directory = dataset_dir(root, name)
    return [_fetch(entry, directory, progress) for entry in _select(name, files, remote)]


def _select(
    name: str, files: Iterable[str] | None, remote: Mapping[str, tuple[RemoteFile, ...]]
) -> list[RemoteFile]:
    """The entries of `remote[name]` to fetch: those named in `files`, else the non-optional."""
    if is_manual(name):
        raise DataError(
            f"{name} cannot be downloaded automatically; run `dcgan download --dataset {name}` "
            "for instructions on fetching it by hand"
        )
    if name not in remote:
        raise DataError(
            f"unknown dataset {name!r}; downloadable: {_names(remote)}; "
            f"{' and '.join(sorted(MANUAL))} are fetched by hand "
            "(run `dcgan download --dataset celeba` for instructions)"
        )
    entries = remote[name]
    if isinstance(files, str):  # one name, not an iterable of its characters
        files = [files]
    if files is None:
        return [entry for entry in entries if not entry.optional]
    wanted = list(dict.fromkeys(files))
    unknown = [f for f in wanted if f not in {entry.name for entry in entries}]
    if unknown:
        raise DataError(
            f"{name} has no file(s) {', '.join(unknown)}; "
            f"its files are {', '.join(entry.name for entry in entries)}"
        )
    return [entry for entry in entries if entry.name in wanted]


def _fetch(entry: RemoteFile, directory: Path, progress: bool) -> Path:
    """Return `directory / entry.name`, verified, fetching it from the first mirror that works."""
    dest = (directory / entry.name).resolve()
    if dest.exists():
        _check_existing(entry, dest)
        return dest
    failures: list[str] = []
    for url in entry.urls:
        downloader = _Downloader(entry, progress)
        try:
            path = pooch.retrieve(
                url, entry.known_hash, fname=entry.name, path=directory, downloader=downloader
            )
        except requests.RequestException as exc:
            failures.append(f"{url} ({_reason(exc)})")
            continue
        except ValueError:
            if downloader.actual_hash is None:
                raise
            # A stale mirror is not fatal: the next one may serve the official file. If none
            # does, both hashes go into the error so the user can tell which mirror is off.
            failures.append(
                f"{url} (checksum mismatch: expected {entry.known_hash}, "
                f"got {downloader.actual_hash}; the download was discarded)"
            )
            continue
        return Path(path)
    raise DataError(
        f"could not fetch {entry.name} from {'; '.join(failures)}; "
        f"download it by hand and put it at {dest}"
    )


def _check_existing(entry: RemoteFile, dest: Path) -> None:
    """Raise DataError if the file already at `dest` is not the official one. It is left
    alone: it may be the user's own data, so deleting it is their call."""
    algorithm = pooch.hashes.hash_algorithm(entry.known_hash)
    actual = pooch.file_hash(str(dest), alg=algorithm)
    if actual.lower() != entry.known_hash.split(":")[-1].lower():
        raise DataError(
            f"{dest} does not match the official checksum (expected {entry.known_hash}, "
            f"got {algorithm}:{actual}); delete it and run `dcgan download` again"
        )


class _Downloader:
    """pooch's HTTP downloader with a bar labelled by file name, a timeout, and a record of the
    downloaded file's hash so a checksum mismatch can be reported with both hashes."""

    def __init__(self, entry: RemoteFile, progress: bool) -> None:
        self.entry = entry
        self.progress = progress
        self.actual_hash: str | None = None

    def __call__(self, url: str, output_file: str, pooch_obj: object) -> None:
        """Download `url` to `output_file` (pooch's temporary file), then hash it."""
        bar = (
            progress_bar(desc=self.entry.name, unit="B", unit_scale=True) if self.progress else None
        )
        try:
            http = pooch.HTTPDownloader(
                progressbar=bar or False, chunk_size=CHUNK_BYTES, timeout=TIMEOUT_S
            )
            http(url, output_file, pooch_obj)
        finally:
            # pooch closes the bar only on success; a failed mirror must not leave one open.
            if bar is not None:
                bar.close()
        algorithm = pooch.hashes.hash_algorithm(self.entry.known_hash)
        self.actual_hash = f"{algorithm}:{pooch.file_hash(output_file, alg=algorithm)}"


def _reason(exc: requests.RequestException) -> str:
    """A short, one-line reason for a failed request."""
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None:
        return f"HTTP {response.status_code} {response.reason}".strip()
    if isinstance(exc, requests.Timeout):
        return f"no answer within {TIMEOUT_S} s"
    text = " ".join(str(exc).split())
    # requests buries the cause (refused, unknown host) deep in a urllib3 repr.
    cause = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if cause:
        return cause.group(1).strip()
    return f"{type(exc).__name__}: {text[:160]}"


def _names(mapping: Iterable[str]) -> str:
    """Sorted, comma-separated keys, for messages."""
    return ", ".join(sorted(mapping))


__all__ = [
    "MANUAL",
    "REMOTE",
    "RemoteFile",
    "dataset_dir",
    "download",
    "is_manual",
    "manual_instructions",
]
