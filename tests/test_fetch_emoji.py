"""scripts/fetch_emoji.py against a small archive in the package's real layout (the test
writes it; nothing is downloaded)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch_emoji.py"


@pytest.fixture(scope="module")
def fetch():
    return load_script("fetch_emoji")


def png(colour: tuple[int, int, int, int]) -> bytes:
    pixels = np.zeros((64, 64, 4), np.uint8)
    pixels[16:48, 16:48] = colour  # a square on a transparent ground
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, format="PNG")
    return out.getvalue()


def archive(path: Path, members: dict[str, bytes], link: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


EMOJI = [
    {"image": "1f600.png", "category": "Smileys & Emotion", "has_img_twitter": True},
    {"image": "1f44b.png", "category": "People & Body", "has_img_twitter": True,
     "skin_variations": {"1F3FB": {"image": "1f44b-1f3fb.png", "has_img_twitter": True}}},
    {"image": "1f3fb.png", "category": "Component", "has_img_twitter": True},
    {"image": "1f4a9.png", "category": "Smileys & Emotion", "has_img_twitter": False},
]  # fmt: skip


def package(tmp_path: Path, **extra) -> Path:
    images = {
        f"package/img/twitter/64/{entry}": png((200, 30, 30, 255))
        for entry in ("1f600.png", "1f44b.png", "1f44b-1f3fb.png", "1f3fb.png", "1f4a9.png")
    }
    members = {"package/emoji.json": json.dumps(EMOJI).encode(), **images}
    return archive(tmp_path / "emoji.tgz", members, **extra)


def test_images_are_laid_out_by_category_on_white(fetch, tmp_path):
    counts = fetch.lay_out(package(tmp_path), tmp_path / "out")
    # The skin-tone variant joins its emoji's category; Component and images the package
    # marks as missing are left out.
    assert counts == {"smileys-and-emotion": 1, "people-and-body": 2}
    assert sorted(p.name for p in (tmp_path / "out" / "people-and-body").iterdir()) == [
        "1f44b-1f3fb.png", "1f44b.png",
    ]  # fmt: skip
    with Image.open(tmp_path / "out" / "smileys-and-emotion" / "1f600.png") as image:
        assert image.mode == "RGB" and image.size == (64, 64)
        assert image.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
        assert image.getpixel((32, 32)) == (200, 30, 30)


def test_the_archive_must_be_the_published_one(fetch, tmp_path):
    with pytest.raises(fetch.FetchError, match="its sha512 is not that of emoji-datasource"):
        fetch.verify(package(tmp_path))


def test_a_link_in_the_archive_is_refused_unread(fetch, tmp_path):
    tarball = package(tmp_path, link="package/img/twitter/64/1f60a.png")
    with pytest.raises(fetch.FetchError, match="1f60a.png is not a regular file"):
        fetch.lay_out(tarball, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_oversized_members_and_junk_are_one_line(fetch, tmp_path):
    big = archive(tmp_path / "big.tgz", {"package/img/twitter/64/1f600.png": b"x" * (2**20 + 1)})
    with pytest.raises(fetch.FetchError, match="over 1,048,576"):
        fetch.lay_out(big, tmp_path / "out")
    (tmp_path / "junk.tgz").write_bytes(b"not gzip")
    with pytest.raises(fetch.FetchError, match="not a readable .tgz"):
        fetch.lay_out(tmp_path / "junk.tgz", tmp_path / "out")
    empty = archive(tmp_path / "empty.tgz", {"package/README.md": b"hi"})
    with pytest.raises(fetch.FetchError, match="has no package/emoji.json"):
        fetch.lay_out(empty, tmp_path / "out")


def test_out_is_written_without_following_links_and_a_file_in_its_place_is_one_line(
    fetch, tmp_path
):
    out = tmp_path / "out"
    (out / "smileys-and-emotion").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me")
    (out / "smileys-and-emotion" / "1f600.png").symlink_to(elsewhere)
    fetch.lay_out(package(tmp_path), out)
    assert elsewhere.read_text() == "keep me"
    assert not (out / "smileys-and-emotion" / "1f600.png").is_symlink()
    (tmp_path / "a file").write_text("")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "a file"), "--tarball", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"fetch_emoji: {tmp_path / 'a file'}: is a file, not a folder"
