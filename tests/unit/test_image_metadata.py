"""The catalogue fields image files carry in their XMP, IPTC and EXIF metadata."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lookalike_ingest.image_metadata import embedded_metadata
from tests.fixtures.embedded_metadata import exif_block, write_jpeg, xmp_packet


def test_xmp_gives_title_creators_keywords_rights_and_year(tmp_path: Path) -> None:
    path = write_jpeg(
        tmp_path / "a.jpg",
        xmp=xmp_packet(
            title="Nighthawks",
            creator=["Edward Hopper", "Jo Hopper"],
            subjects=["diner", "night"],
            rights="© Heirs of Josephine Hopper",
            date="1942-01-21",
        ),
    )
    assert embedded_metadata(path) == {
        "title": "Nighthawks",  # the x-default alternative, not the first language listed
        "creator": "Edward Hopper; Jo Hopper",
        "tags": ["diner", "night"],
        "rights": "© Heirs of Josephine Hopper",
        "year": 1942,
    }


def test_iptc_gives_the_fields_when_there_is_no_xmp(tmp_path: Path) -> None:
    path = write_jpeg(
        tmp_path / "b.jpg",
        iptc=[
            (5, "Migrant Mother"),
            (80, "Dorothea Lange"),
            (25, "depression"),
            (25, "portrait"),
            (55, "19360301"),
            (116, "Public domain"),
        ],
    )
    assert embedded_metadata(path) == {
        "title": "Migrant Mother",
        "creator": "Dorothea Lange",
        "tags": ["depression", "portrait"],
        "year": 1936,
        "rights": "Public domain",
    }


def test_exif_gives_the_fields_when_there_is_nothing_else(tmp_path: Path) -> None:
    path = write_jpeg(
        tmp_path / "c.jpg",
        exif=exif_block(
            title="Moonrise, Hernandez",
            artist="Ansel Adams",
            keywords="landscape; moon",
            copyright="© The Ansel Adams Publishing Rights Trust",
            taken="1941:11:01 16:05:00",
        ),
    )
    assert embedded_metadata(path) == {
        "title": "Moonrise, Hernandez",
        "creator": "Ansel Adams",
        "tags": ["landscape", "moon"],
        "year": 1941,
        "rights": "© The Ansel Adams Publishing Rights Trust",
    }


def test_xmp_wins_over_iptc_and_exif_which_fill_in_what_it_lacks(tmp_path: Path) -> None:
    path = write_jpeg(
        tmp_path / "d.jpg",
        xmp=xmp_packet(title="From XMP"),
        iptc=[(5, "From IPTC"), (80, "IPTC Creator")],
        exif=exif_block(title="From EXIF", artist="EXIF Artist", taken="1950:01:01 00:00:00"),
    )
    found = embedded_metadata(path)
    assert (found["title"], found["creator"], found["year"]) == ("From XMP", "IPTC Creator", 1950)


def test_a_file_without_metadata_or_with_broken_xmp_still_reads(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert embedded_metadata(plain) == {}
    broken = write_jpeg(
        tmp_path / "broken.jpg",
        xmp=b"<x:xmpmeta><rdf:RDF><unclosed>",
        exif=exif_block(artist="Still Read"),
    )
    assert embedded_metadata(broken) == {"creator": "Still Read"}
    not_an_image = tmp_path / "fake.jpg"
    not_an_image.write_bytes(b"not a JPEG at all")
    assert embedded_metadata(not_an_image) == {}


def test_an_entity_expansion_bomb_in_xmp_is_refused(tmp_path: Path) -> None:
    entities = (
        b'<!DOCTYPE x:xmpmeta [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    )
    packet = xmp_packet(title="&lol3;").replace(b"?><x:xmpmeta", b"?>" + entities + b"<x:xmpmeta")
    path = write_jpeg(tmp_path / "bomb.jpg", xmp=packet, exif=exif_block(artist="Safe"))
    assert embedded_metadata(path) == {"creator": "Safe"}  # no title of a thousand lols
