"""Make a folder of small coloured shape images, to try `dcgan` on data that is not digits
without downloading anything.

    .venv/bin/python scripts/make_shapes.py OUT_DIR [--count 3000] [--size 64]
        [--aspect 1.0] [--seed 0] [--force]

Each image is an RGB PNG, `size` pixels high and round(size * aspect) wide: a plain or soft
two-colour gradient background with one to three filled shapes (circles and ellipses,
squares and rectangles, triangles, stars, rings) in random saturated colours, sizes,
positions and rotations, some with a darker outline. Shapes are drawn at 4x and shrunk, so
their edges are antialiased. The first shape is the main one: the largest, never overlapped
by the others. The images go into sub-folders by its kind (circle/, square/, triangle/,
star/, ring/, equally many of each), so the set also serves class-conditional training;
the `folder` source searches sub-folders. With --aspect 2.0 the shapes fit the wide frame
as well (a "wide" set, like side views of bicycles).

The same seed, count, size and aspect give the same files; image i depends only on the seed
and i. An existing non-empty OUT_DIR is refused unless --force, which first deletes the
PNGs in its five kind sub-folders. Point a config at the folder with `data.source: folder`,
`data.path: OUT_DIR`, `data.channels: 3`.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("circle", "square", "triangle", "star", "ring")
SCALE = 4  # supersampling factor

Color = tuple[int, int, int]


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB colour in 0..1 from hue (wrapping), saturation and value."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def to8(rgb: np.ndarray) -> Color:
    r, g, b = (int(round(255 * min(max(float(c), 0.0), 1.0))) for c in rgb)
    return (r, g, b)


def background(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, list]:
    """A plain or two-colour linear gradient background, light or dark and never very
    saturated, and the colours it is made of (for the contrast check)."""
    hue = rng.random()
    if rng.random() < 0.6:
        first = hsv(hue, rng.uniform(0.0, 0.3), rng.uniform(0.78, 0.97))
    else:
        first = hsv(hue, rng.uniform(0.0, 0.5), rng.uniform(0.1, 0.38))
    if rng.random() < 0.35:
        return Image.new("RGB", (width, height), to8(first)), [first]
    h, s, v = colorsys.rgb_to_hsv(*first)
    shift = rng.uniform([-0.15, -0.1, -0.2], [0.15, 0.2, 0.2])
    second = hsv(h + shift[0], s + shift[1], v + shift[2])
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    pixels = first + t[..., None] * (second - first)
    pixels = np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels), [first, second]


def shape_color(rng: np.random.Generator, against: list) -> np.ndarray:
    """A saturated colour that stands out from every colour in `against`."""
    best, best_gap = None, -1.0
    for _ in range(40):
        color = hsv(rng.random(), rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))
        gap = min(float(np.linalg.norm(color - other)) for other in against)
        if gap > best_gap:
            best, best_gap = color, gap
        if gap > 0.45:
            break
    return best


def ellipse_points(cx: float, cy: float, a: float, b: float, rot: float, n: int = 96) -> list:
    c, s = math.cos(rot), math.sin(rot)
    points = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x, y = a * math.cos(t), b * math.sin(t)
        points.append((cx + x * c - y * s, cy + x * s + y * c))
    return points


def polar_points(cx: float, cy: float, radii: list, angles: list) -> list:
    pairs = zip(radii, angles, strict=True)
    return [(cx + r * math.cos(t), cy + r * math.sin(t)) for r, t in pairs]


def outlines(kind: str, rng: np.random.Generator, cx: float, cy: float, r: float) -> list:
    """The polygon(s) of one shape that fits in the circle of radius r around (cx, cy):
    the outer boundary, and for a ring also the hole."""
    rot = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        squash = 1.0 if rng.random() < 0.5 else rng.uniform(0.5, 0.85)
        return [ellipse_points(cx, cy, r, r * squash, rot)]
    if kind == "ring":
        squash = 1.0 if rng.random() < 0.6 else rng.uniform(0.65, 0.9)
        hole = rng.uniform(0.45, 0.68)
        return [
            ellipse_points(cx, cy, r, r * squash, rot),
            ellipse_points(cx, cy, r * hole, r * squash * hole, rot),
        ]
    if kind == "square":
        half = math.pi / 4 if rng.random() < 0.5 else rng.uniform(math.pi / 7, math.pi / 2.8)
        angles = [rot + half, rot + math.pi - half, rot + math.pi + half, rot - half]
        return [polar_points(cx, cy, [r] * 4, angles)]
    if kind == "triangle":
        jitter = rng.uniform(-0.35, 0.35, size=2)
        angles = [rot, rot + 2 * math.pi / 3 + jitter[0], rot + 4 * math.pi / 3 + jitter[1]]
        return [polar_points(cx, cy, [r] * 3, angles)]
    points = int(rng.integers(5, 8))
    inner = r * rng.uniform(0.38, 0.55)
    angles = [rot + math.pi * k / points for k in range(2 * points)]
    return [polar_points(cx, cy, [r, inner] * points, angles)]


def place(rng: np.random.Generator, width: int, height: int, r: float, taken: list) -> tuple:
    """A centre for radius r inside the frame that keeps clear of the shapes in `taken`
    ((cx, cy, r) each), or None after a number of tries."""
    margin = 0.04 * min(width, height)
    for _ in range(30):
        cx = rng.uniform(r + margin, width - r - margin)
        cy = rng.uniform(r + margin, height - r - margin)
        if all(math.hypot(cx - x, cy - y) > r + q + margin for x, y, q in taken):
            return cx, cy
    return None


def draw_shape(canvas: Image.Image, polygons: list, fill: Color, edge: Color | None, width: int):
    """Fill the shape on a layer of its own, just big enough for it (so a ring's hole shows
    what is below), and lay the layer on the canvas."""
    xs = [x for x, _ in polygons[0]]
    ys = [y for _, y in polygons[0]]
    left, top = max(0, math.floor(min(xs)) - 2), max(0, math.floor(min(ys)) - 2)
    right = min(canvas.width, math.ceil(max(xs)) + 2)
    bottom = min(canvas.height, math.ceil(max(ys)) + 2)
    layer = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    line = None if edge is None else edge + (255,)
    for k, polygon in enumerate(polygons):
        shifted = [(x - left, y - top) for x, y in polygon]
        colour = fill + (255,) if k == 0 else (0, 0, 0, 0)  # later polygons are holes
        draw.polygon(shifted, fill=colour, outline=line, width=width)
    canvas.alpha_composite(layer, dest=(left, top))


def make_image(seed: int, index: int, size: int, aspect: float) -> tuple[str, Image.Image]:
    """Image `index` of the set and its main shape's kind."""
    rng = np.random.default_rng([seed, index])
    kind = KINDS[index % len(KINDS)]
    height, width = size * SCALE, max(1, round(size * aspect)) * SCALE
    base, colours = background(rng, width // SCALE, height // SCALE)  # smooth: no need for 4x
    canvas = base.resize((width, height), Image.Resampling.BILINEAR).convert("RGBA")
    short = min(width, height)

    main_r = rng.uniform(0.25, 0.42) * short
    shapes = [(kind, place(rng, width, height, main_r, []) or (width / 2, height / 2), main_r)]
    taken = [(*shapes[0][1], main_r)]
    extras = int(rng.choice([0, 1, 2], p=[0.4, 0.35, 0.25]))
    for _ in range(extras):
        r = rng.uniform(0.22, 0.6) * main_r
        centre = place(rng, width, height, r, taken)
        if centre is not None:
            shapes.append((KINDS[int(rng.integers(len(KINDS)))], centre, r))
            taken.append((*centre, r))

    for shape_kind, (cx, cy), r in shapes:
        colour = shape_color(rng, colours)
        edge = to8(colour * rng.uniform(0.3, 0.55)) if rng.random() < 0.4 else None
        edge_width = max(SCALE, round(r * rng.uniform(0.05, 0.1)))
        draw_shape(canvas, outlines(shape_kind, rng, cx, cy, r), to8(colour), edge, edge_width)
    return kind, canvas.convert("RGB").reduce(SCALE)


def fail(message: str) -> None:
    """Stop with exit code 2, as the dcgan command does for a bad argument."""
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the images into")
    parser.add_argument("--count", type=int, default=3000, help="number of images (3000)")
    parser.add_argument("--size", type=int, default=64, help="image height in pixels (64)")
    parser.add_argument("--aspect", type=float, default=1.0, help="width / height (1.0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--force", action="store_true", help="write into a non-empty OUT_DIR (old PNGs go)"
    )
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.size < 8:
        parser.error("--size must be at least 8")
    if not 0.25 <= args.aspect <= 8:
        parser.error("--aspect must be between 0.25 and 8")
    if args.seed < 0:
        parser.error("--seed must not be negative")

    out: Path = args.out_dir
    if out.exists() and not out.is_dir():
        fail(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not args.force:
            fail(f"{out} is not empty (use --force to write into it anyway)")
        for kind in KINDS:
            for old in (out / kind).glob("*.png"):
                old.unlink()
    for kind in KINDS:
        (out / kind).mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    digits = max(5, len(str(args.count - 1)))
    counts = dict.fromkeys(KINDS, 0)
    width = max(1, round(args.size * args.aspect))
    for index in range(args.count):
        kind, image = make_image(args.seed, index, args.size, args.aspect)
        image.save(out / kind / f"{index:0{digits}d}.png")
        counts[kind] += 1
    seconds = time.perf_counter() - start
    per_kind = ", ".join(f"{counts[kind]} {kind}" for kind in KINDS)
    print(
        f"wrote {args.count} images of {width}x{args.size} to {out} ({per_kind}) in {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
