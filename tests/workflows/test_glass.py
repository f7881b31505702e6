"""The glass protocol: any composition under any potential (a potential file here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from amtoolkit.cli import main
from amtoolkit.workflows import make_dataset
from amtoolkit.workflows.glass import element_counts, parse_composition
from amtoolkit.workflows.runner import WorkflowError, get_protocol

CUZR = str(Path(__file__).resolve().parents[2] / "examples" / "potentials" / "cuzr-mendelev.yaml")
# a tiny, fast-quenched Cu-Zr cell: it exercises the pipeline in a few seconds
TINY = {
    "composition": "Cu50Zr50",
    "potential": CUZR,
    "atoms": 32,
    "start_density": 7.0,
    "melt_time": 1.0,
    "cooling_rate": 2000.0,
    "final_time": 0.5,
    "elastic_steps": 2,
}


@pytest.mark.parametrize(
    "formula, n, expected",
    [
        ("Cu50Zr50", 64, {"Cu": 32, "Zr": 32}),
        ("Cu64Zr36", 100, {"Cu": 64, "Zr": 36}),
        ("Cu0.64Zr0.36", 100, {"Cu": 64, "Zr": 36}),
        ("SiO2", 100, {"Si": 33, "O": 67}),  # largest remainder: O's share 66.67 rounds up
        ("Pd40Ni40P20", 80, {"Pd": 32, "Ni": 32, "P": 16}),
    ],
)
def test_element_counts_follow_the_formula_and_sum_to_the_cell(formula, n, expected):
    assert element_counts(formula, n) == expected
    assert sum(element_counts(formula, n).values()) == n


@pytest.mark.parametrize("formula", ["", "cu50zr50", "Xx2O", "Cu50 Zr-5", "Cu0Zr1"])
def test_bad_formulas_are_named(formula):
    with pytest.raises(ValueError, match="composition"):
        parse_composition(formula)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"potential": ""}, "glass needs a potential"),
        ({"start_density": None}, "glass needs start_density"),
        ({"composition": "NaCl"}, "element 'Na' is not covered by potential 'cuzr-mendelev'"),
        ({"melt_temperature": 200.0}, "must be above final_temperature"),
        ({"atoms": 3, "composition": "Cu90Zr10"}, "hold no Zr"),
        ({"cooling_rate": 1e13}, "K/ps"),
        ({"potential": "/nowhere/pot.yaml"}, "not found"),
    ],
)
def test_bad_options_are_refused_before_any_md(options, fragment):
    with pytest.raises((ValueError, FileNotFoundError), match=fragment):
        get_protocol("glass", **{**TINY, **options})


def test_a_charged_potential_needs_whole_formula_units():
    with pytest.raises(
        WorkflowError, match=r"\(33 Si 67 O\) carry -1.2 e under 'bmp-glass'.*whole formula"
    ):
        get_protocol(
            "glass", composition="SiO2", potential="bmp-glass", atoms=100, start_density=2.2
        )
    assert get_protocol(
        "glass", composition="SiO2", potential="bmp-glass", atoms=99, start_density=2.2
    ).element_counts() == {"Si": 33, "O": 66}
    with pytest.raises(WorkflowError, match="no paper setting"):
        get_protocol("glass", full=True, **TINY)


def test_tiny_cuzr_glass_dataset_has_consistent_hill_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(CUZR).parent)  # a relative potential file is kept absolute
    options = {**TINY, "potential": "cuzr-mendelev.yaml"}
    ds = make_dataset("glass", 2, tmp_path / "cuzr.h5", workers=1, progress=False, **options)
    assert len(ds) == 2 and ds.provenance["parameters"]["potential"] == CUZR
    assert ds.provenance["potential"]["digest"].startswith("sha256-")
    for atoms in ds:
        assert sorted(atoms.get_chemical_symbols()) == ["Cu"] * 16 + ["Zr"] * 16
    p = ds.properties
    assert np.all((p["density"] > 6.0) & (p["density"] < 8.0))  # g/cm3
    assert np.all((p["relaxed_energy"] > -5.5) & (p["relaxed_energy"] < -4.0))  # eV/atom
    k, g = p["bulk_modulus"], p["shear_modulus"]
    assert np.all(g > 0) and np.all(k > g)  # a metallic glass: K well above G
    np.testing.assert_allclose(p["youngs_modulus"], 9 * k * g / (3 * k + g), rtol=1e-9)
    np.testing.assert_allclose(p["poisson_ratio"], (3 * k - 2 * g) / (2 * (3 * k + g)), rtol=1e-9)


def test_command_line_makes_a_glass_and_refuses_a_missing_density(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cuzr.h5"
    args = [
        "dataset",
        "make",
        "glass",
        "--composition",
        "Cu50Zr50",
        "-p",
        CUZR,
        "-n",
        "1",
        "-o",
        str(out),
        "--workers",
        "1",
        "--atoms",
        "32",
        "--no-progress",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "amtool: error: glass needs start_density (g/cm3), near the glass's density: "
        "e.g. --set start_density=7.0 for Cu50Zr50"
    ]
    sets = [
        f"--set={k}={json.dumps(v)}"
        for k, v in TINY.items()
        if k not in ("composition", "potential", "atoms")
    ]
    result = runner.invoke(main, args + sets + ["--set", "elastic=false"])
    assert result.exit_code == 0, result.output
    assert "wrote 1 sample of glass" in result.output
    assert "shear_modulus" not in result.output  # elastic=false: density and energy only


def test_a_resume_with_an_edited_potential_file_is_refused(tmp_path):
    from amtoolkit.potentials._lammps import potentials_dir

    (tmp_path / "CuZr.eam.fs").write_bytes((potentials_dir() / "CuZr_mm.eam.fs").read_bytes())
    potential = tmp_path / "mine.yaml"
    potential.write_text(
        "elements: [Cu, Zr]\npair_style: eam/fs\npair_coeff: '* * CuZr.eam.fs {elements}'\n"
    )
    options = {**TINY, "potential": str(potential), "elastic": False}
    make_dataset("glass", 1, tmp_path / "g.h5", workers=1, progress=False, **options)
    with open(tmp_path / "CuZr.eam.fs", "a") as handle:  # the parameters, not the YAML
        handle.write("\n")
    with pytest.raises(WorkflowError, match="potential_digest"):
        make_dataset(
            "glass", 2, tmp_path / "g.h5", workers=1, resume=True, progress=False, **options
        )
    with pytest.raises(WorkflowError, match="unknown potential 'lj'"):
        get_protocol("glass", **{**TINY, "potential": "lj"})
