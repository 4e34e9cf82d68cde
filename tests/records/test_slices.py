"""Tests for textgate.slices: parsing, strict validation and the masks each kind selects."""

from __future__ import annotations

import numpy as np
import pytest

from textgate.errors import ConfigError, DataError
from textgate.slices import (
    SliceSpec,
    load_slices_toml,
    parse_slice_flag,
    slice_masks,
)

EXAMPLE_TOML = r"""
# Top-level keys come before the first [[slice]]; after it they would belong to that slice.
length_buckets = [0, 16, 32, 64]

[[slice]]
name = "slang"
regex = '\b(omg|lol|lmao)\b'

[[slice]]
name = "shouty"
regex = 'OMG'
case_sensitive = true

[[slice]]
name = "from-2016"
column = "source"
equals = "twitter-2016test-A"

[[slice]]
name = "year"
column = "year"
equals = 2016

[[slice]]
name = "long"
min_tokens = 48
"""


def write(tmp_path, text: str, name: str = "slices.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- --slice flags -------------------------------------------------------------------------

def test_parse_slice_flag():
    spec = parse_slice_flag(r"slang=\b(omg|lol)\b")
    assert spec == SliceSpec(name="slang", kind="regex", pattern=r"\b(omg|lol)\b")
    assert spec.case_sensitive is False
    assert parse_slice_flag("eq=a=b").pattern == "a=b"


@pytest.mark.parametrize("flag, message", [
    ("slang", r"--slice 'slang' must be NAME=REGEX"),
    ("=lol", r"--slice '=lol' must be NAME=REGEX with a non-empty name"),
    ("slang=", r"Slice 'slang' needs a non-empty regex"),
    ("slang=(lol", r"Slice 'slang' has an invalid regex '\(lol': missing \), unterminated"),
])
def test_parse_slice_flag_errors(flag, message):
    with pytest.raises(ConfigError, match=message):
        parse_slice_flag(flag)


# --- TOML ----------------------------------------------------------------------------------

def test_load_slices_toml_reads_every_kind_and_bucket_shorthand(tmp_path):
    specs = load_slices_toml(write(tmp_path, EXAMPLE_TOML))
    by_name = {s.name: s for s in specs}
    assert [s.name for s in specs] == [
        "slang", "shouty", "from-2016", "year", "long",
        "tokens 0-15", "tokens 16-31", "tokens 32-63", "tokens 64+",
    ]
    assert by_name["slang"] == SliceSpec(name="slang", kind="regex",
                                         pattern=r"\b(omg|lol|lmao)\b")
    assert by_name["shouty"].case_sensitive is True
    assert by_name["from-2016"] == SliceSpec(name="from-2016", kind="column", column="source",
                                             equals="twitter-2016test-A")
    assert by_name["year"].equals == "2016"
    assert by_name["long"] == SliceSpec(name="long", kind="length", min_tokens=48)
    assert (by_name["tokens 16-31"].min_tokens, by_name["tokens 16-31"].max_tokens) == (16, 32)
    assert (by_name["tokens 64+"].min_tokens, by_name["tokens 64+"].max_tokens) == (64, None)


def test_length_buckets_alone_and_unit_width_name(tmp_path):
    specs = load_slices_toml(write(tmp_path, "length_buckets = [1, 2, 10]\n"))
    assert [s.name for s in specs] == ["tokens 1", "tokens 2-9", "tokens 10+"]


@pytest.mark.parametrize("body, message", [
    ('[[slice]]\nname = "slang"\nregexp = "lol"\n',
     r"Unknown key 'regexp' in slice 'slang' of slices.toml; allowed keys: name, regex, "
     r"case_sensitive, column, equals, min_tokens, max_tokens"),
    ('[[slice]]\nname = "x"\n',
     r"Slice 'x' of slices.toml must set exactly one of regex, column .*it sets none of them"),
    ('[[slice]]\nname = "x"\nequals = "a"\n',
     r"Slice 'x' of slices.toml must set exactly one of .*none of them"),
    ('[[slice]]\nname = "x"\nregex = "a"\ncolumn = "c"\nequals = "v"\n',
     r"Slice 'x' of slices.toml must set exactly one of .*it sets regex and column"),
    ('[[slice]]\nname = "x"\nregex = "a"\nmax_tokens = 3\n', r"it sets regex and length"),
    ('[[slice]]\nregex = "a"\n', r"Slice #1 of slices.toml needs a non-empty string 'name'"),
    ('[[slice]]\nname = "x"\ncolumn = "c"\n', r"Slice 'x' is a column slice and needs 'equals'"),
    ('[[slice]]\nname = "x"\ncolumn = "c"\nequals = "v"\ncase_sensitive = true\n',
     r"Slice 'x' is a column slice but also sets case_sensitive"),
    ('[[slice]]\nname = "x"\nregex = "a"\nequals = "v"\n',
     r"Slice 'x' is a regex slice but also sets equals"),
    ('[[slice]]\nname = "x"\nregex = "(a"\n', r"Slice 'x' has an invalid regex .*missing \)"),
    ('[[slice]]\nname = "x"\nmin_tokens = 10\nmax_tokens = 5\n',
     r"max_tokens \(5\) must be greater than min_tokens \(10\)"),
    ('[[slice]]\nname = "x"\nmin_tokens = "48"\n',
     r"Key 'min_tokens' in slice 'x' of slices.toml must be an integer; got '48'"),
    ('[[slice]]\nname = "x"\nmin_tokens = true\n', r"Key 'min_tokens' .* must be an integer"),
    ('[[slice]]\nname = "x"\nregex = "a"\ncase_sensitive = "yes"\n',
     r"Key 'case_sensitive' .* must be true or false"),
    ('[[slice]]\nname = "x"\nmin_tokens = -1\n', r"min_tokens must be a non-negative integer"),
    ('[[slice]]\nname = "a"\nregex = "x"\n[[slice]]\nname = "a"\nregex = "y"\n',
     r"Slice name 'a' is used twice in slices.toml"),
    ('length_buckets = [0, 16]\n[[slice]]\nname = "tokens 16+"\nmin_tokens = 16\n',
     r"Slice name 'tokens 16\+' is used twice"),
    ('length_buckets = [16, 0]\n', r"length_buckets in slices.toml must be a non-empty list of "
                                   r"increasing non-negative integers .*got \[16, 0\]"),
    ('length_buckets = []\n', r"length_buckets .* must be a non-empty list"),
    ('slices = []\n', r"Unknown top-level key 'slices' in slices.toml; allowed: slice, "
                      r"length_buckets"),
    ('[slice]\nname = "x"\nregex = "a"\n', r"must be an array of tables; .*\[\[slice\]\]"),
    ('# nothing here\n', r"slices.toml defines no slices"),
    ('[[slice]]\nname = "long"\nmin_tokens = 48\nlength_buckets = [0, 16]\n',
     r"length_buckets sits inside slice 'long' of slices.toml .*move length_buckets above the "
     r"first \[\[slice\]\]"),
    ('[[slice]]\nname = "x\nregex = "a"\n', r"slices.toml is not valid TOML: .*line 2"),
])
def test_load_slices_toml_rejects_bad_definitions(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_slices_toml(path)
    assert info.value.path == path


def test_load_slices_toml_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"Slice file .*absent.toml does not exist"):
        load_slices_toml(tmp_path / "absent.toml")


def test_spec_checks_fields_when_built_directly():
    with pytest.raises(ConfigError, match=r"Slice 'x' has kind 'topic'; use one of regex"):
        SliceSpec(name="x", kind="topic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Slice 'x' is a length slice and needs min_tokens"):
        SliceSpec(name="x", kind="length")
    with pytest.raises(ConfigError, match=r"A slice name must be a non-empty string"):
        SliceSpec(name=" ", kind="regex", pattern="a")


# --- masks ---------------------------------------------------------------------------------

TEXTS = ["OMG that was fire", "omg", "nothing to see", "LOLA is a name", "lol ok then sure"]


def test_regex_masks_are_case_insensitive_unless_asked():
    specs = [
        parse_slice_flag(r"slang=\b(omg|lol|fire)\b"),
        SliceSpec(name="shouty", kind="regex", pattern="OMG", case_sensitive=True),
        SliceSpec(name="any-omg", kind="regex", pattern="OMG"),
    ]
    result = slice_masks(specs, texts=TEXTS, columns={})
    assert list(result.masks) == ["slang", "shouty", "any-omg"]
    assert result.masks["slang"].tolist() == [True, True, False, False, True]
    assert result.masks["shouty"].tolist() == [True, False, False, False, False]
    assert result.masks["any-omg"].tolist() == [True, True, False, False, False]
    assert all(m.dtype == bool and m.shape == (len(TEXTS),) for m in result.masks.values())


def test_column_masks_compare_as_strings():
    columns = {"source": ("a", "b", "a", None, "c"), "year": (2016, "2016", 2017, None, 2016.5)}
    specs = [
        SliceSpec(name="from-a", kind="column", column="source", equals="a"),
        SliceSpec(name="2016", kind="column", column="year", equals="2016"),
        SliceSpec(name="no-source", kind="column", column="source", equals=""),
    ]
    masks = slice_masks(specs, texts=TEXTS, columns=columns).masks
    assert masks["from-a"].tolist() == [True, False, True, False, False]
    assert masks["2016"].tolist() == [True, True, False, False, False]
    assert masks["no-source"].tolist() == [False, False, False, True, False]


def test_column_slice_on_absent_column_lists_available_ones():
    spec = SliceSpec(name="from-2016", kind="column", column="src", equals="x")
    with pytest.raises(ConfigError, match=r"Slice 'from-2016' uses column 'src', which the "
                                          r"dataset does not have; available columns: id, source"):
        slice_masks([spec], texts=["a"], columns={"id": (1,), "source": ("x",)})
    with pytest.raises(ConfigError, match=r"available columns: \(none besides"):
        slice_masks([spec], texts=["a"], columns={})


def test_length_masks_use_token_counts_when_given_else_words(tmp_path):
    specs = load_slices_toml(write(tmp_path, "length_buckets = [0, 2, 4]\n"))
    texts = ["one", "one two", "one two three", "a b c d e", ""]
    tokens = slice_masks(specs, texts=texts, columns={}, token_counts=[5, 1, 3, 2, 0])
    words = slice_masks(specs, texts=texts, columns={})
    assert tokens.length_unit == "tokens"
    assert words.length_unit == "words"
    assert tokens.masks["tokens 0-1"].tolist() == [False, True, False, False, True]
    assert tokens.masks["tokens 2-3"].tolist() == [False, False, True, True, False]
    assert tokens.masks["tokens 4+"].tolist() == [True, False, False, False, False]
    assert words.masks["tokens 0-1"].tolist() == [True, False, False, False, True]
    assert words.masks["tokens 2-3"].tolist() == [False, True, True, False, False]
    assert words.masks["tokens 4+"].tolist() == [False, False, False, True, False]


def test_open_ended_length_slices():
    texts = ["x"] * 4
    counts = np.array([10, 47, 48, 100])
    specs = [SliceSpec(name="long", kind="length", min_tokens=48),
             SliceSpec(name="short", kind="length", max_tokens=11)]
    masks = slice_masks(specs, texts=texts, columns={}, token_counts=counts).masks
    assert masks["long"].tolist() == [False, False, True, True]
    assert masks["short"].tolist() == [True, False, False, False]


def test_slice_masks_input_errors():
    spec = SliceSpec(name="long", kind="length", min_tokens=2)
    with pytest.raises(DataError, match=r"token_counts has shape \(2,\) but there are 3 texts"):
        slice_masks([spec], texts=["a", "b", "c"], columns={}, token_counts=[1, 2])
    regex = SliceSpec(name="dup", kind="regex", pattern="a")
    with pytest.raises(ConfigError, match=r"Slice name 'dup' is used twice"):
        slice_masks([regex, regex], texts=["a"], columns={})
    column = SliceSpec(name="c", kind="column", column="source", equals="x")
    with pytest.raises(DataError, match=r"Column 'source' has 1 values but there are 2 texts"):
        slice_masks([column], texts=["a", "b"], columns={"source": ("x",)})
