"""docs/configuration.md is what `pushstream config --reference` generates from the config structs, and
it gives every key of every section a type, a default and a meaning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from pushstream.codecs.config import _Top
from pushstream.codecs.destinations import REGISTRY
from pushstream.streams.commands.reference import SECTIONS, field_docs, reference

ROOT = Path(__file__).resolve().parents[3]


def test_the_page_is_the_generated_reference() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page.strip() == reference().strip(), "docs/configuration.md is stale: pushstream config --reference > it"


def test_every_key_of_every_section_has_a_row_with_a_meaning() -> None:
    page = reference()
    for section in SECTIONS:
        docs = field_docs(section.struct)
        for f in msgspec.structs.fields(section.struct):
            assert docs.get(f.name), f"{section.heading}.{f.encode_name} has no #: comment"
            assert f"| `{f.encode_name}` |" in page.split(f"## {section.heading}")[1].split("\n## ")[0]


def test_every_table_of_the_file_and_every_destination_type_has_a_section() -> None:
    headings = {s.heading for s in SECTIONS}
    for f in msgspec.structs.fields(_Top):
        assert any(h.strip("[]") == f.name for h in headings), f"no section for [{f.name}]"
    assert all(f'settings (type = "{slug}")' in headings for slug in REGISTRY)


def test_the_command_prints_it_and_asks_for_what_to_print() -> None:
    run = subprocess.run([sys.executable, "-m", "pushstream.streams", "config", "--reference"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == reference().strip()
    bare = subprocess.run([sys.executable, "-m", "pushstream.streams", "config"], capture_output=True, text=True,
                          timeout=60)
    assert bare.returncode == 2 and bare.stderr.strip() == "pushstream: say what to print: pushstream config --reference"
