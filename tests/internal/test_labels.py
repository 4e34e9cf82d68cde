"""The one label resolver (textgate._internal.labels): names and ids both ways, one message."""

from __future__ import annotations

import numpy as np
import pytest

from textgate._internal.labels import (
    encode_labels,
    encode_true,
    label_ids,
    label_lookup,
)
from textgate.errors import DataError


def test_lookup_maps_names_to_themselves_and_ids_to_names_names_winning():
    assert label_lookup(("neg", "pos")) == {"0": "neg", "1": "pos", "neg": "neg", "pos": "pos"}
    assert label_lookup(("1", "0"))["1"] == "1"  # a name that looks like an id stays that name


def test_ids_in_label_order_and_unknown_labels_counted_once_each():
    assert label_ids(["b", "a", "b"], ("a", "b")).tolist() == [1, 0, 1]
    assert encode_labels(np.array(["b", "zzz"], dtype=object), ("a", "b")).tolist() == [1, -1]
    with pytest.raises(DataError, match=r"labels must contain only labels in the columns \['a', 'b'\]; "
                                        r"got unknown labels 'x' \(2\), 'y' \(1\)\. Add them\.") as caught:
        label_ids(["x", "a", "y", "x"], ("a", "b"), among="the columns", fix="Add them.")
    assert caught.value.field == "labels"


def test_true_labels_name_y_true():
    with pytest.raises(DataError, match="y_true must contain only labels") as caught:
        encode_true(["a", "c"], ("a", "b"))
    assert caught.value.field == "y_true"


def test_the_audit_exports_this_resolver():
    from textgate import audit

    assert audit.label_ids is label_ids
