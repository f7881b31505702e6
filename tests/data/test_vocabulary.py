"""Element vocabulary: ghost class 0, encode/decode, JSON form, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from amtoolkit.data import ElementVocabulary, VocabularyError


def test_ghost_is_class_zero_and_order_is_kept():
    vocab = ElementVocabulary.from_elements(["Si", "O"])
    assert vocab.symbols == ["X", "Si", "O"]
    assert vocab.elements == ["Si", "O"]
    assert vocab.numbers == (0, 14, 8)
    assert len(vocab) == 3
    assert vocab.z_to_index == {0: 0, 14: 1, 8: 2}
    np.testing.assert_array_equal(vocab.index_to_z, [0, 14, 8])
    assert "O" in vocab and 14 in vocab and "X" in vocab and "Na" not in vocab
    # a leading ghost is accepted, numbers work like symbols, the constructor is the same
    assert ElementVocabulary.from_elements(["X", 14, "O"]) == vocab
    assert ElementVocabulary(["Si", "O"]) == vocab == ElementVocabulary((0, 14, 8))


def test_encode_decode_round_trip():
    vocab = ElementVocabulary.from_elements(["O", "Si"])
    numbers = np.array([14, 8, 0, 8, 14, 0])
    indices = vocab.encode(numbers)
    np.testing.assert_array_equal(indices, [2, 1, 0, 1, 2, 0])
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(vocab.decode(indices), numbers)
    assert vocab.encode([]).shape == (0,)


def test_from_structures_sorts_by_atomic_number_and_skips_ghosts():
    frames = [Atoms("SiO2X"), Atoms("LiAl")]
    vocab = ElementVocabulary.from_structures(frames)
    assert vocab.symbols == ["X", "Li", "O", "Al", "Si"]


def test_json_round_trip():
    vocab = ElementVocabulary.from_elements(["O", "Si", "Li"])
    stored = json.loads(json.dumps(vocab.to_list()))
    assert stored == ["X", "O", "Si", "Li"]
    assert ElementVocabulary.from_list(stored) == vocab


def test_errors_name_the_element():
    vocab = ElementVocabulary.from_elements(["O", "Si"])
    with pytest.raises(VocabularyError, match=r"element Na \(Z=11\) is not in the vocabulary"):
        vocab.encode([8, 11, 14])
    with pytest.raises(VocabularyError, match="class index 3 is out of range 0..2"):
        vocab.decode([0, 3])
    with pytest.raises(VocabularyError, match="must be integers"):
        vocab.encode(np.array([8.0, 14.0]))
    with pytest.raises(VocabularyError, match="appears twice"):
        ElementVocabulary.from_elements(["O", "Si", "O"])
    with pytest.raises(VocabularyError, match="only appear first"):
        ElementVocabulary.from_elements(["O", "X"])
    with pytest.raises(VocabularyError, match="unknown chemical symbol 'Qq'"):
        ElementVocabulary.from_elements(["Qq"])
    with pytest.raises(VocabularyError, match="expected a list of elements"):
        ElementVocabulary("OSi")
    with pytest.raises(VocabularyError, match="must start with the ghost"):
        ElementVocabulary.from_list(["O", "Si"])
