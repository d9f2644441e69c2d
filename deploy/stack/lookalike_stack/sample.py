"""The sample catalogue: real photographs and artworks that installed packages bundle
(scikit-image, scikit-learn, matplotlib), so nothing is downloaded at run time.

Licences are those the packages state for their sample data (public domain, CC0 or
the packages' own permissive licences)."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SampleImage:
    image_id: str
    package: str
    path: str  # inside the package
    title: str
    creator: str
    year: int
    medium: str
    tags: tuple[str, ...]
    license: str = "public-domain"

    def source(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"package {self.package} is not installed; install the 'local' extra"
            )
        return Path(spec.origin).parent / self.path


_SK = "skimage"
SAMPLES: tuple[SampleImage, ...] = (
    SampleImage("img-00001", _SK, "data/astronaut.png", "Astronaut Eileen Collins", "NASA", 1998, "colour photograph", ("portrait", "space", "nasa")),
    SampleImage("img-00002", _SK, "data/camera.png", "The Cameraman", "Lav Varshney", 2008, "black-and-white photograph", ("portrait", "camera", "tripod")),
    SampleImage("img-00003", _SK, "data/chelsea.png", "Chelsea the Cat", "Stefan van der Walt", 2010, "colour photograph", ("cat", "animal")),
    SampleImage("img-00004", _SK, "data/coffee.png", "Cup of Coffee", "Rachel Michetti", 2011, "colour photograph", ("still life", "coffee")),
    SampleImage("img-00005", _SK, "data/coins.png", "Greek Coins from Pompeii", "Brooklyn Museum", 1920, "black-and-white photograph", ("coins", "antiquity", "museum")),
    SampleImage("img-00006", _SK, "data/hubble_deep_field.jpg", "Hubble Deep Field", "NASA/ESA", 1996, "astronomical photograph", ("space", "galaxies", "nasa")),
    SampleImage("img-00007", _SK, "data/moon.png", "Surface of the Moon", "NASA", 1966, "black-and-white photograph", ("space", "moon", "craters")),
    SampleImage("img-00008", _SK, "data/rocket.jpg", "Falcon 9 Launch", "SpaceX", 2018, "colour photograph", ("rocket", "launch", "space")),
    SampleImage("img-00009", _SK, "data/retina.jpg", "Human Retina", "Mikael Häggström", 2014, "medical photograph", ("medicine", "eye")),
    SampleImage("img-00010", _SK, "data/ihc.png", "Immunohistochemistry Stain", "Unknown laboratory", 2012, "microscopy", ("microscopy", "science")),
    SampleImage("img-00011", _SK, "data/brick.png", "Brick Wall", "scikit-image contributors", 2015, "texture photograph", ("texture", "brick", "architecture")),
    SampleImage("img-00012", _SK, "data/grass.png", "Grass", "scikit-image contributors", 2015, "texture photograph", ("texture", "grass", "nature")),
    SampleImage("img-00013", _SK, "data/gravel.png", "Gravel", "scikit-image contributors", 2015, "texture photograph", ("texture", "stones")),
    SampleImage("img-00014", _SK, "data/cell.png", "Cell under the Microscope", "scikit-image contributors", 2016, "microscopy", ("microscopy", "biology")),
    SampleImage("img-00015", _SK, "data/clock_motion.png", "Clock in Motion", "scikit-image contributors", 2013, "black-and-white photograph", ("clock", "motion blur")),
    SampleImage("img-00016", _SK, "data/color.png", "Colour Chart", "scikit-image contributors", 2014, "colour photograph", ("colour", "chart")),
    SampleImage("img-00017", _SK, "data/horse.png", "Horse Silhouette", "Andreas Preuss", 2009, "drawing", ("horse", "animal", "silhouette")),
    SampleImage("img-00018", _SK, "data/logo.png", "Snake Emblem", "scikit-image contributors", 2012, "digital artwork", ("emblem", "snake", "graphic design")),
    SampleImage("img-00019", _SK, "data/microaneurysms.png", "Retinal Microaneurysms", "Häggström, Mikael", 2014, "medical photograph", ("medicine", "eye")),
    SampleImage("img-00020", _SK, "data/motorcycle_left.png", "Motorcycle, Left View", "Middlebury Stereo", 2014, "colour photograph", ("motorcycle", "stereo")),
    SampleImage("img-00021", _SK, "data/motorcycle_right.png", "Motorcycle, Right View", "Middlebury Stereo", 2014, "colour photograph", ("motorcycle", "stereo")),
    SampleImage("img-00022", _SK, "data/page.png", "Printed Page", "scikit-image contributors", 2011, "scanned document", ("text", "document")),
    SampleImage("img-00023", _SK, "data/text.png", "Handwritten Text", "scikit-image contributors", 2011, "scanned document", ("text", "handwriting")),
    SampleImage("img-00024", "sklearn", "datasets/images/china.jpg", "Temple in China", "scikit-learn contributors", 2010, "colour photograph", ("architecture", "temple", "china")),
    SampleImage("img-00025", "sklearn", "datasets/images/flower.jpg", "Flower", "scikit-learn contributors", 2010, "colour photograph", ("flower", "nature")),
    SampleImage("img-00026", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "Rear Admiral Grace Hopper", "U.S. Navy", 1984, "colour photograph", ("portrait", "computing", "navy")),
    SampleImage("img-00027", "matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png", "Blue Present", "Minduka", 2009, "digital illustration", ("gift", "illustration")),
)  # fmt: skip


def materialize(folder: Path) -> list[dict[str, Any]]:
    """Copy the sample images into `folder` (the ingest file root) and return the catalogue:
    the `data` of one upsert event per image, with file:// URLs."""
    folder.mkdir(parents=True, exist_ok=True)
    catalogue = []
    for sample in SAMPLES:
        source = sample.source()
        target = folder / f"{sample.image_id}{source.suffix.lower()}"
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, target)
        catalogue.append(
            {
                "image_id": sample.image_id,
                "version": 1,
                "image_url": target.resolve().as_uri(),
                "title": sample.title,
                "creator": sample.creator,
                "year": sample.year,
                "medium": sample.medium,
                "tags": list(sample.tags),
                "license": sample.license,
            }
        )
    return catalogue
