"""A colour development set fetched by name: the Twemoji images of the npm package
emoji-datasource-twitter 16.0.0 (MIT licence; the images are Twitter's Twemoji, CC-BY 4.0),
laid out as 64x64 RGB-on-white PNGs, one sub-folder per category of the package, so it also
serves conditional training (model.conditional).

    .venv/bin/python scripts/fetch_emoji.py data/emoji [--tarball FILE] [--force]

It needs the network once, here, at set-up (about 62 MB from registry.npmjs.org), never in
the tests or in training; --tarball lays out a copy already on disk instead. The archive is
checked against the package's published sha512 before anything in it is read, and read in
memory, member by member: nothing is extracted, only regular files of the expected names
and bounded sizes are read. Skin-tone variants go to their emoji's category; the package's
"Component" category (bare skin-tone swatches and hair parts) is left out.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import sys
import tarfile
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path

from PIL import Image

from dcgan.errors import DcganError
from dcgan.files.writing import atomic_path, check_folder, make_folder

PACKAGE = "emoji-datasource-twitter"
VERSION = "16.0.0"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
# dist.integrity of https://registry.npmjs.org/emoji-datasource-twitter/16.0.0
INTEGRITY = (
    "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/"
    "dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ=="
)
MAX_TARBALL = 128 * 2**20
MAX_JSON = 16 * 2**20
MAX_PNG = 2**20
IMAGE_DIR = "package/img/twitter/64/"
LEFT_OUT = {"Component"}
SIZE = 64


class FetchError(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tarball", type=Path, help="the package's .tgz, already downloaded")
    parser.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    args = parser.parse_args()
    try:
        if check_folder(args.out) and any(args.out.iterdir()) and not args.force:
            raise FetchError(f"{args.out}: not empty (use --force to write into it)")
        with tempfile.TemporaryDirectory() as scratch:
            tarball = args.tarball or download(Path(scratch) / "emoji.tgz")
            verify(tarball)
            counts = lay_out(tarball, args.out)
    except (FetchError, DcganError) as exc:
        sys.exit(f"fetch_emoji: {exc}")
    total = sum(counts.values())
    print(f"wrote {total} images of {SIZE}x{SIZE} RGB to {args.out}:")
    for category, count in sorted(counts.items()):
        print(f"  {category:<22} {count}")


def download(path: Path) -> Path:
    print(f"downloading {TARBALL_URL}", file=sys.stderr)
    try:
        with urllib.request.urlopen(TARBALL_URL, timeout=60) as response, open(path, "wb") as out:
            size = 0
            while chunk := response.read(2**20):
                size += len(chunk)
                if size > MAX_TARBALL:
                    raise FetchError(f"{TARBALL_URL}: larger than {MAX_TARBALL >> 20} MB")
                out.write(chunk)
    except OSError as exc:
        raise FetchError(f"cannot download {TARBALL_URL}: {exc}") from None
    return path


def verify(tarball: Path) -> None:
    """The archive's sha512 against the one the registry publishes for this version."""
    if not tarball.is_file() or tarball.stat().st_size > MAX_TARBALL:
        raise FetchError(f"{tarball}: not a file of at most {MAX_TARBALL >> 20} MB")
    digest = hashlib.sha512(tarball.read_bytes()).digest()
    if "sha512-" + base64.b64encode(digest).decode() != INTEGRITY:
        raise FetchError(
            f"{tarball}: its sha512 is not that of {PACKAGE} {VERSION} ({INTEGRITY[:24]}...)"
        )


def lay_out(tarball: Path, out: Path) -> Counter:
    """OUT/<category>/<image>.png for every emoji image of the archive; the counts."""
    wanted = read_members(tarball)
    if "package/emoji.json" not in wanted:
        raise FetchError(f"{tarball}: has no package/emoji.json")
    try:
        entries = json.loads(wanted["package/emoji.json"])
    except ValueError as exc:
        raise FetchError(f"{tarball}: package/emoji.json is not JSON: {exc}") from None
    counts: Counter = Counter()
    for name, category in categories(entries).items():
        data = wanted.get(IMAGE_DIR + name)
        if data is None or category in LEFT_OUT:
            continue
        folder = out / slug(category)
        make_folder(folder)
        # Written beside and renamed into place: a link already at that name is replaced,
        # never written through.
        with atomic_path(folder / name) as written:
            on_white(data, name).save(written, format="PNG")
        counts[slug(category)] += 1
    if not counts:
        raise FetchError(f"{tarball}: no emoji image of {IMAGE_DIR} is listed in emoji.json")
    return counts


def read_members(tarball: Path) -> dict[str, bytes]:
    """package/emoji.json and the 64 px PNGs, read in memory: regular files only, each
    within its bound, nothing written to disk."""
    wanted: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, mode="r:gz") as archive:
            for member in archive:
                name = member.name
                is_png = name.startswith(IMAGE_DIR) and re.fullmatch(
                    r"[0-9a-f-]+\.png", name[len(IMAGE_DIR) :]
                )
                if name != "package/emoji.json" and not is_png:
                    continue
                limit = MAX_JSON if name.endswith(".json") else MAX_PNG
                if not member.isfile():
                    raise FetchError(f"{tarball}: {name} is not a regular file")
                if member.size > limit:
                    raise FetchError(f"{tarball}: {name} is {member.size:,} bytes, over {limit:,}")
                wanted[name] = archive.extractfile(member).read(limit)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"{tarball}: not a readable .tgz: {exc}") from None
    return wanted


def categories(entries: list) -> dict[str, str]:
    """Each image file name (skin-tone variants too) -> its emoji's category."""
    found = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not entry.get("has_img_twitter"):
            continue
        category = str(entry.get("category", "Other"))
        found[str(entry.get("image"))] = category
        for variant in (entry.get("skin_variations") or {}).values():
            if isinstance(variant, dict) and variant.get("has_img_twitter"):
                found[str(variant.get("image"))] = category
    return found


def slug(category: str) -> str:
    """'People & Body' -> 'people-and-body'."""
    return re.sub(r"[^a-z0-9]+", "-", category.lower().replace("&", "and")).strip("-")


def on_white(data: bytes, name: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width > 4 * SIZE or image.height > 4 * SIZE:
                raise FetchError(f"{name}: {image.width}x{image.height}, not a 64 px emoji")
            rgba = image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FetchError(f"{name}: not a readable PNG: {exc}") from None
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=rgba.getchannel("A"))
    return (
        white.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        if white.size != (SIZE, SIZE)
        else white
    )


if __name__ == "__main__":
    main()
