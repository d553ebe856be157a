"""The built-in demo dataset: characters rendered from the fonts that ship inside matplotlib.

A class is a character covered by all 13 faces (12 DejaVu Sans / Sans Mono / Serif styles + STIXGeneral),
after dropping near-empty glyphs and merging homoglyphs (Latin A, Greek Alpha and Cyrillic A render
alike: they become one class named after the lowest code point). Every class has faces x jitters
32 x 32 greyscale images (white ink on black), each jitter a seeded random rotation, scale, shear, shift,
dilation/erosion and noise. The superclass of a class is its Unicode block group.

The rendered bank is written once to ``<cache>/glyphs-<settings hash>.npz``; a benchmark draws
``num_classes`` seeded random classes from it with a random half/half partition, and the remaining
classes are the held-out pool that plays ImageNet's role for the FID feature extractor.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from tasks.data.arrays import ArrayLoader
from tasks.data.base import DatasetError, LabelledImages
from tasks.data.cache import atomic_write, cache_root
from tasks.data.registry import GLYPH_FACES as FACES

CATEGORIES = "LNPS"  # Unicode general categories kept: letters, numbers, punctuation, symbols
SIZE = 32
SUPERSAMPLE = 2  # render and jitter at 2x, then box-downsample: smooth edges at 32 px
FONT_PX = 40  # em size on the 64 px canvas: capitals are about 15 px tall at 32 px
HOMOGLYPH_RMS = 0.04  # clean renders closer than this (RMS over all faces, intensities in [0, 1]) merge
MIN_INK_PIXELS = 6.0  # a glyph with less ink than 6 full pixels in some face is dropped as near-empty
JITTER = {"rotation_deg": 10.0, "scale": (0.85, 1.15), "shear": 0.15, "shift_px": 2.0, "noise_std": 10.0}
FORMAT = 2  # bump when rendering changes, so old caches are not reused

# Unicode blocks (first, last code point) grouped into superclasses; the covered characters fall in these.
BLOCK_GROUPS = (
    (0x0000, 0x024F, "Latin"),  # Basic Latin, Latin-1 Supplement, Latin Extended-A/B
    (0x0250, 0x02AF, "IPA"),
    (0x02B0, 0x02FF, "Modifier"),
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x1D00, 0x1DBF, "IPA"),  # Phonetic Extensions
    (0x1E00, 0x1EFF, "Latin"),  # Latin Extended Additional
    (0x1F00, 0x1FFF, "Greek"),  # Greek Extended
    (0x2000, 0x20CF, "Punctuation"),  # General Punctuation, Super/Subscripts, Currency
    (0x2100, 0x218F, "Letterlike"),  # Letterlike Symbols, Number Forms
    (0x2190, 0x21FF, "Arrows"),
    (0x2200, 0x22FF, "Math"),
    (0x2300, 0x24FF, "Technical"),  # Misc Technical, Control Pictures, OCR, Enclosed Alphanumerics
    (0x2500, 0x257F, "Box"),
    (0x2580, 0x25FF, "Geometric"),  # Block Elements, Geometric Shapes
    (0x2600, 0x27BF, "Symbols"),  # Misc Symbols, Dingbats
    (0x27C0, 0x27EF, "Math"),
    (0x27F0, 0x27FF, "Arrows"),
    (0x2900, 0x297F, "Arrows"),
    (0x2980, 0x2AFF, "Math"),
    (0x2B00, 0x2BFF, "Arrows"),  # Misc Symbols and Arrows
    (0x2C60, 0x2C7F, "Latin"),
    (0xA720, 0xA7FF, "Latin"),
    (0xFB00, 0xFB4F, "Latin"),  # Alphabetic Presentation Forms (ligatures)
    (0xFFF0, 0xFFFF, "Technical"),  # Specials
    (0x1D400, 0x1D7FF, "Math"),
)


def superclass_of(code: int) -> str:
    """The Unicode block group of a code point ("Other" outside the table)."""
    return next((group for first, last, group in BLOCK_GROUPS if first <= code <= last), "Other")


def class_name(code: int) -> str:
    return f"U+{code:04X}"


def default_cache_dir() -> Path:
    """``$OODML_CACHE/glyphs``, else ``~/.cache/oodml/glyphs``."""
    return cache_root() / "glyphs"


def font_dir() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass(frozen=True)
class RenderSettings:
    """What the rendered bank depends on; ``faces`` and ``max_chars`` shrink it (tests), the default is all."""

    faces: tuple[str, ...] = FACES
    max_chars: int | None = None  # keep only the first max_chars covered characters (by code point)
    jitters: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faces) - set(FACES))
        if unknown or not self.faces:
            raise DatasetError(f"glyphs: faces must be a non-empty subset of {FACES}, got unknown {unknown}")
        if self.jitters < 1:
            raise DatasetError(f"glyphs: jitters must be at least 1, got {self.jitters}")

    def key(self) -> str:
        """Hash of the settings, the rendering constants and the font files' bytes."""
        digest = hashlib.sha256()
        for face in self.faces:
            digest.update((font_dir() / f"{face}.ttf").read_bytes())
        constants = [FORMAT, CATEGORIES, SIZE, SUPERSAMPLE, FONT_PX, HOMOGLYPH_RMS, MIN_INK_PIXELS, JITTER]
        digest.update(json.dumps([asdict(self), constants]).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class GlyphBank:
    """All rendered images, class-major: ``codes[i]`` is the class code point of ``pixels[i]``."""

    path: Path
    pixels: np.ndarray  # N x 32 x 32 uint8
    codes: np.ndarray  # N int32, the class representative's code point
    faces: np.ndarray  # N int16, index into face_names
    jitters: np.ndarray  # N int16
    face_names: tuple[str, ...]

    @property
    def class_codes(self) -> np.ndarray:
        return np.unique(self.codes)

    def write(self) -> None:
        """A compressed ``.npz``, written atomically.

        Deflate level 1: the noise leaves the pixels hardly compressible, and numpy's default level
        takes four times as long for a file 9% smaller.
        """
        arrays = {
            "pixels": self.pixels,
            "codes": self.codes,
            "faces": self.faces,
            "jitters": self.jitters,
            "face_names": np.array(self.face_names, dtype=np.str_),
        }
        with atomic_write(self.path) as handle:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for name, array in arrays.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                        np.lib.format.write_array(entry, array, allow_pickle=False)

    @classmethod
    def read(cls, path: Path) -> GlyphBank:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                path=path,
                pixels=data["pixels"],
                codes=data["codes"],
                faces=data["faces"],
                jitters=data["jitters"],
                face_names=tuple(str(f) for f in data["face_names"]),
            )


def covered_characters(faces: tuple[str, ...]) -> list[int]:
    """Code points of letters, numbers, punctuation and symbols present in every face's cmap."""
    common: set[int] | None = None
    for face in faces:
        cmap = set(TTFont(font_dir() / f"{face}.ttf", lazy=True).getBestCmap())
        common = cmap if common is None else common & cmap
    return sorted(c for c in common or () if unicodedata.category(chr(c))[0] in CATEGORIES)


def render_clean(font: ImageFont.FreeTypeFont, code: int) -> np.ndarray:
    """The glyph centred on the supersampled canvas (middle of its advance width and of the line)."""
    side = SIZE * SUPERSAMPLE
    canvas = Image.new("L", (side, side))
    ImageDraw.Draw(canvas).text((side / 2, side / 2), chr(code), fill=255, font=font, anchor="mm")
    return np.asarray(canvas)


def dilate_erode(clean: np.ndarray) -> np.ndarray:
    """``clean`` (... x H x W) as is, dilated and eroded by a 2 x 2 square, stacked on a new first axis.

    At the 2x supersampled size this thickens or thins strokes by half an output pixel; a 3 x 3 square
    erased the hairlines of the thin STIX face.
    """

    def spread(image: np.ndarray, extreme: np.ufunc) -> np.ndarray:
        padded = np.pad(image, [(0, 0)] * (image.ndim - 2) + [(0, 1), (0, 1)])
        rows = extreme(padded[..., :-1], padded[..., 1:])
        return extreme(rows[..., :-1, :], rows[..., 1:, :])

    return np.stack([clean, spread(clean, np.maximum), spread(clean, np.minimum)])


def jitter_thetas(rng: np.random.Generator, count: int) -> np.ndarray:
    """Random affine maps (rotation, scale, shear, shift) as ``affine_grid`` thetas: count x 2 x 3."""
    angle = np.deg2rad(rng.uniform(-1, 1, count) * JITTER["rotation_deg"])
    scale = rng.uniform(*JITTER["scale"], count)
    shear = rng.uniform(-1, 1, count) * JITTER["shear"]
    shift = rng.uniform(-1, 1, (count, 2)) * JITTER["shift_px"] / (SIZE / 2)  # normalised coordinates
    cos, sin = np.cos(angle), np.sin(angle)
    forward = np.stack([np.stack([cos, cos * shear - sin], -1), np.stack([sin, sin * shear + cos], -1)], 1)
    inverse = np.linalg.inv(forward * scale[:, None, None])  # theta maps output to input coordinates
    return np.concatenate([inverse, -inverse @ shift[:, :, None]], axis=2).astype(np.float32)


def warp(sources: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """Bilinear warp of B x 64 x 64 supersampled images onto B x 32 x 32 (float grey levels).

    Sampling the 2x image at the output pixel centres averages each 2 x 2 block (a box filter). The
    grid is ``affine_grid(thetas, align_corners=False)``'s, computed by one einsum (several times faster).
    """
    centres = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / (SIZE / 2) - 1
    x, y = centres.expand(SIZE, SIZE), centres[:, None].expand(SIZE, SIZE)
    base = torch.stack([x, y, torch.ones(SIZE, SIZE)], -1).view(-1, 3)
    grid = torch.einsum("pk,bjk->bpj", base, torch.from_numpy(thetas)).view(len(thetas), SIZE, SIZE, 2)
    images = torch.from_numpy(sources).unsqueeze(1).float()
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped[:, 0].numpy()


def box_downsample(clean: np.ndarray) -> np.ndarray:
    """Supersampled uint8 renders (... x 64 x 64) -> ... x 32 x 32 floats in [0, 1], 2 x 2 block means."""
    blocks = clean.reshape(*clean.shape[:-2], SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE)
    total = sum(
        blocks[..., :, i, :, j].astype(np.float32) for i in range(SUPERSAMPLE) for j in range(SUPERSAMPLE)
    )
    return total / (255 * SUPERSAMPLE**2)


def merge_homoglyphs(clean: np.ndarray, codes: list[int]) -> dict[int, int]:
    """Code point -> its class representative (the lowest code point among glyphs that render alike).

    ``clean`` is characters x faces x H x W in [0, 1]; two characters are alike when the RMS difference
    over all faces is below ``HOMOGLYPH_RMS``; "alike" is closed transitively (union-find). Candidate
    pairs come from 4 x 4 block means, whose RMS difference never exceeds the full one.
    """
    count, faces, height, width = clean.shape
    coarse = clean.reshape(count, faces, height // 4, 4, width // 4, 4).mean((3, 5)).reshape(count, -1)
    squares = (coarse**2).sum(1)
    coarse_ms = (squares[:, None] + squares[None, :] - 2 * coarse @ coarse.T) / coarse.shape[1]
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # the small slack absorbs rounding in the expanded square above
    for i, j in zip(*np.nonzero(np.triu(coarse_ms < HOMOGLYPH_RMS**2 + 1e-6, k=1)), strict=True):
        if np.mean((clean[i] - clean[j]) ** 2) < HOMOGLYPH_RMS**2:
            a, b = find(int(i)), find(int(j))
            parent[max(a, b)] = min(a, b)  # codes are sorted, so the lower index is the lower code point
    return {code: codes[find(i)] for i, code in enumerate(codes)}


def render_bank(settings: RenderSettings, path: Path) -> GlyphBank:
    """Render every class: faces x jitters images, deterministic from ``settings.seed``."""
    codes = covered_characters(settings.faces)[: settings.max_chars]
    fonts = [ImageFont.truetype(str(font_dir() / f"{face}.ttf"), size=FONT_PX) for face in settings.faces]
    clean = np.stack([[render_clean(font, code) for font in fonts] for code in codes])
    small = box_downsample(clean)
    inked = np.flatnonzero(small.sum(axis=(2, 3)).min(axis=1) >= MIN_INK_PIXELS)
    representative = merge_homoglyphs(small[inked], [codes[i] for i in inked])
    classes = [i for i in inked if representative[codes[i]] == codes[i]]
    variants = dilate_erode(clean[classes])  # 3 x classes x faces x 64 x 64
    # image n shows class n // per_class, face (n // jitters) % faces, jitter n % jitters
    per_class = len(fonts) * settings.jitters
    count = len(classes) * per_class
    class_index = np.arange(count) // per_class
    face_index = np.arange(count) // settings.jitters % len(fonts)
    rng = np.random.default_rng(settings.seed)
    thetas = jitter_thetas(rng, count)
    morphology = rng.integers(3, size=count)  # as is, dilated or eroded
    noise_std = rng.uniform(0, JITTER["noise_std"], count).astype(np.float32)
    pixels = np.empty((count, SIZE, SIZE), np.uint8)
    for start in range(0, count, 4096):
        part = slice(start, min(start + 4096, count))
        warped = warp(variants[morphology[part], class_index[part], face_index[part]], thetas[part])
        warped += rng.standard_normal(warped.shape, dtype=np.float32) * noise_std[part, None, None]
        pixels[part] = np.clip(np.rint(warped, out=warped), 0, 255, out=warped)
    return GlyphBank(
        path=path,
        pixels=pixels,
        codes=np.array([codes[i] for i in classes], dtype=np.int32)[class_index],
        faces=face_index.astype(np.int16),
        jitters=(np.arange(count) % settings.jitters).astype(np.int16),
        face_names=settings.faces,
    )


def glyph_bank(root: str | Path | None, settings: RenderSettings) -> GlyphBank:
    """The bank for ``settings`` from ``root`` (default cache folder), rendered and written on first use."""
    path = Path(root or default_cache_dir()).expanduser() / f"glyphs-{settings.key()}.npz"
    if path.is_file():
        return GlyphBank.read(path)
    bank = render_bank(settings, path)
    bank.write()
    return bank


def bank_images(bank: GlyphBank, name: str, train: list[int], test: list[int]) -> LabelledImages:
    """The bank's images of the classes ``train + test`` (code points), in that class order."""
    rows = np.concatenate([np.flatnonzero(bank.codes == code) for code in train + test])
    ids = tuple(
        f"{class_name(int(bank.codes[r]))}/{bank.face_names[bank.faces[r]]}_j{bank.jitters[r]}.png"
        for r in rows
    )
    return LabelledImages(
        name=name,
        root=bank.path,
        image_ids=ids,
        labels=tuple(class_name(int(bank.codes[r])) for r in rows),
        default_train=tuple(class_name(c) for c in train),
        default_test=tuple(class_name(c) for c in test),
        load=ArrayLoader(np.ascontiguousarray(bank.pixels[rows])),
        superclasses={class_name(c): superclass_of(c) for c in train + test},
    )


def benchmark_classes(bank: GlyphBank, num_classes: int, seed: int) -> tuple[list[int], list[int]]:
    """``num_classes`` seeded random classes split at random into train (floor half) and test."""
    available = bank.class_codes
    if not 2 <= num_classes <= len(available):
        raise DatasetError(
            f"glyphs: num_classes must lie between 2 and the {len(available)} rendered classes "
            f"(in {bank.path}), got {num_classes}"
        )
    chosen = available[np.random.default_rng(seed).permutation(len(available))[:num_classes]]
    half = num_classes // 2
    return sorted(int(c) for c in chosen[:half]), sorted(int(c) for c in chosen[half:])


def load_glyphs(
    root: str | Path | None,
    num_classes: int = 200,
    seed: int = 0,
    jitters: int = RenderSettings.jitters,
    render_seed: int = RenderSettings.seed,
    faces: tuple[str, ...] = RenderSettings.faces,
    max_chars: int | None = RenderSettings.max_chars,
    name: str = "glyphs",
) -> LabelledImages:
    """The CUB-like glyph benchmark: ``num_classes`` classes drawn with ``seed``, half of them train.

    ``jitters``, ``render_seed``, ``faces`` and ``max_chars`` select the rendered bank (defaults: the full
    demo set); ``root`` is the cache folder (default ``default_cache_dir()``). ``name``: what results call
    it (a study entry of its own, e.g. two benchmarks drawn with different seeds).
    """
    bank = glyph_bank(root, RenderSettings(tuple(faces), max_chars, jitters, render_seed))
    train, test = benchmark_classes(bank, num_classes, seed)
    return bank_images(bank, name, train, test)


def glyph_heldout(root: str | Path | None, **options: Any) -> LabelledImages:
    """The classes the benchmark ``load_glyphs(root, **options)`` does not use, all in ``default_train``."""
    return heldout_for(load_glyphs(root, **options))


def heldout_of(bank: GlyphBank, used: set[int]) -> LabelledImages:
    """The bank's classes outside ``used`` (code points)."""
    rest = [int(c) for c in bank.class_codes if int(c) not in used]
    if not rest:
        raise DatasetError(f"glyphs: no held-out classes left in {bank.path}; use fewer benchmark classes")
    return bank_images(bank, "glyphs-heldout", rest, [])


def heldout_for(images: LabelledImages) -> LabelledImages:
    """The held-out pool of a glyph benchmark: the classes of its bank that it does not use."""
    if not (images.root.suffix == ".npz" and images.root.is_file()):
        raise DatasetError(
            f"{images.name}: not a glyph benchmark (its root {images.root} is not a glyph bank)"
        )
    used = {int(name.removeprefix("U+"), 16) for name in images.classes}
    return heldout_of(GlyphBank.read(images.root), used)
