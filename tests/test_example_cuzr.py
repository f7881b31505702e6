"""examples/cuzr_glass.py end to end on a small, fast-quenched cell (a potential file at work)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from amtoolkit.io import read_structures

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "cuzr_glass.py"


def test_cuzr_glass_example_melts_quenches_and_measures(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("cuzr_glass", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "glass.extxyz"
    assert module.main(["--atoms", "64", "--rate", "2000", "--out", str(out)]) == 0
    (glass,) = read_structures(out)
    assert sorted(set(glass.get_chemical_symbols())) == ["Cu", "Zr"] and len(glass) == 64
    printed = capsys.readouterr().out
    assert "Hill moduli: G" in printed
    assert 6.5 < module.density(glass) < 7.8  # g/cm3; Cu50Zr50 glass about 7.2 here


def test_cuzr_glass_example_refuses_bad_arguments():
    spec = importlib.util.spec_from_file_location("cuzr_glass", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as info:
        module.main(["--atoms", "4"])
    assert info.value.code == 2
