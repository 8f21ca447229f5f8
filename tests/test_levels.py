"""Level names (spatialspec.levels): canonical names and the errors of parse_level / parse_levels."""

from __future__ import annotations

import re

import pytest

from spatialspec.levels import LEVEL_KINDS, SpecificityLevel, parse_level, parse_levels


@pytest.mark.parametrize(
    ("text", "kind", "param", "name"),
    [
        ("binary", "binary", None, "binary"),
        ("seg", "seg", None, "seg"),
        ("SEG", "seg", None, "seg"),
        ("  seg  ", "seg", None, "seg"),
        ("bbox", "bbox", None, "bbox"),
        ("bbox:component", "bbox", None, "bbox"),
        ("bbox:all", "bbox", "all", "bbox:all"),
        ("patch:4", "patch", 4, "patch:4"),
        ("Patch:1", "patch", 1, "patch:1"),
        ("patch:16", "patch", 16, "patch:16"),
        ("dilate:2", "dilate", 2, "dilate:2"),
        ("dilate:2.0", "dilate", 2, "dilate:2"),
        ("dilate:2.5", "dilate", 2.5, "dilate:2.5"),
        ("dilate:40", "dilate", 40, "dilate:40"),
        ("dilate:0.5", "dilate", 0.5, "dilate:0.5"),
    ],
)
def test_parse_level_canonical(text, kind, param, name):
    level = parse_level(text)
    assert isinstance(level, SpecificityLevel)
    assert level.kind == kind
    assert level.param == param
    assert type(level.param) is type(param)
    assert level.name == name
    assert str(level) == name
    # the canonical name parses back to the same level
    assert parse_level(level.name) == level


@pytest.mark.parametrize(("level", "name"), [(SpecificityLevel("dilate", 2.0), "dilate:2"),
                                            (SpecificityLevel("dilate", 2.5), "dilate:2.5"),
                                            (SpecificityLevel("patch", 3), "patch:3"),
                                            (SpecificityLevel("bbox", "all"), "bbox:all"),
                                            (SpecificityLevel("seg"), "seg")])
def test_level_name_built_directly(level, name):
    assert level.name == name


def test_parse_level_passes_level_through():
    level = SpecificityLevel("patch", 4)
    assert parse_level(level) is level


@pytest.mark.parametrize(("text", "supervised"), [("binary", False), ("seg", True), ("bbox", True),
                                                  ("patch:2", True), ("dilate:3", True), ("bbox:all", True)])
def test_is_location_supervised(text, supervised):
    assert parse_level(text).is_location_supervised is supervised


def test_level_kinds():
    assert set(LEVEL_KINDS) == {"binary", "patch", "dilate", "bbox", "seg"}


@pytest.mark.parametrize(
    "text",
    [
        "foo",  # unknown kind
        "segmentation",
        "binary:2",  # takes no parameter
        "seg:1",
        "bbox:foo",  # only 'all' / 'component'
        "bbox:2",
        "patch",  # needs a parameter
        "patch:",
        "dilate",
        "dilate:",
        "patch:0",  # K >= 1
        "patch:-2",
        "patch:2.5",  # K integer
        "patch:abc",
        "dilate:0",  # R > 0
        "dilate:-1",
        "dilate:nan",
        "dilate:abc",
    ],
)
def test_parse_level_errors_name_the_level(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_level(text)


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_parse_level_rejects_empty_or_non_string(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_level(bad)


def test_parse_levels_comma_string():
    levels = parse_levels("binary, patch:4,dilate:2.5,bbox,bbox:all,seg")
    assert [lv.name for lv in levels] == ["binary", "patch:4", "dilate:2.5", "bbox", "bbox:all", "seg"]


def test_parse_levels_list_and_blank_items():
    levels = parse_levels(["seg", "", "  ", "patch:2", SpecificityLevel("binary")])
    assert [lv.name for lv in levels] == ["seg", "patch:2", "binary"]
    assert [lv.name for lv in parse_levels("binary,,seg,")] == ["binary", "seg"]


@pytest.mark.parametrize("names", ["", ",", " , ", []])
def test_parse_levels_empty(names):
    with pytest.raises(ValueError, match="at least one level"):
        parse_levels(names)


@pytest.mark.parametrize(("names", "bad"), [("binary,foo:3,seg", "foo:3"), (["seg", "patch:0"], "patch:0"),
                                            ("bbox,dilate:-2", "dilate:-2")])
def test_parse_levels_error_names_the_bad_level(names, bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_levels(names)
