"""Dataset summaries and ``amtool dataset info``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from click.testing import CliRunner

from amtoolkit.cli import main
from amtoolkit.data import Dataset, summarize


def _dataset() -> Dataset:
    si = bulk("Si", "diamond", 5.431, cubic=True)  # 8 atoms, 2.329 g/cm3
    sio2 = Atoms("SiO2", positions=[[0, 0, 0], [1.6, 0, 0], [0, 1.6, 0]], cell=[5, 5, 5], pbc=True)
    return Dataset.from_atoms(
        [si, sio2, si.repeat((1, 1, 2))],
        properties={"shear_modulus": [10.0, np.nan, 30.0], "ring_size": [6.0, 7.0, 8.0]},
        provenance={"command": "made by hand"},
    )


def test_summary_counts_composition_density_and_properties():
    s = summarize(_dataset())
    assert s.n_structures == 3
    assert (s.n_atoms.min, s.n_atoms.max, s.n_atoms.mean) == (3, 16, 9.0)
    # 24 Si + 1 Si + 2 O = 27 atoms
    assert s.composition == pytest.approx({"O": 2 / 27, "Si": 25 / 27})
    assert s.density.max == pytest.approx(2.329, abs=1e-3)  # diamond Si
    g = s.properties["shear_modulus"]
    assert (g.n, g.mean, g.sd, g.min, g.max) == (2, 20.0, 10.0, 10.0, 30.0)
    table = s.table()
    assert "shear_modulus" in table and "(1 missing)" in table and "made by hand" in table
    relabelled = _dataset().with_properties({"ring_size": [6.5] * 3}, how="rings by hand")
    assert re.search(r"labels added +ring_size by rings by hand", summarize(relabelled).table())


def test_summary_names_the_structures_with_implausible_labels():
    ds = Dataset.from_atoms(
        [bulk("Si", "diamond", 5.431, cubic=True)] * 4,
        properties={"poisson_ratio": [0.2, 0.63, np.nan, -1.5], "ring_size": [6.0] * 4},
    )
    s = summarize(ds)
    assert s.implausible == {"poisson_ratio": [1, 3]}  # NaN is missing, not implausible
    assert re.search(
        r"implausible poisson_ratio +outside \(-1, 0.5\) in 2 of 4 structures \(1, 3\)", s.table()
    )
    assert summarize(_dataset()).implausible == {}


def test_summary_says_how_the_run_went_and_which_split_part_it_is():
    provenance = {
        "command": "amtool dataset make a-si -n 3 -o a.h5",
        "protocol": "a-si",
        "seed": 4,
        "complete": False,
        "n_samples": 3,
        "samples": [
            {"index": 0, "elastic_unstable": True},
            {"index": 2, "unconverged_relaxations": ["quench"]},
        ],
        "failed_samples": [{"index": 1, "attempts": []}],
        "resumed": ["amtool dataset make a-si -n 3 -o a.h5 --resume"],
    }
    ds = Dataset.from_atoms(list(_dataset())[:2], provenance=provenance)
    table = summarize(ds).table()
    assert re.search(r"protocol +a-si, seed 4", table)
    assert re.search(r"complete +no: 1 failed sample\(s\) \(indices 1\)", table)
    assert re.search(r"unconverged relaxations +in 1 samples \(2\)", table)
    assert re.search(r"unstable C +in 1 samples \(0\)", table)
    assert re.search(r"resumed +1 time\(s\), last: .* --resume", table)
    subset = ds.with_properties({}).subset([0])  # a view of fewer frames than samples
    assert "this set holds 1 of the run's 2 samples" in summarize(subset).table()
    train, _, _ = _dataset().split(val=1 / 3, test=1 / 3, seed=0)
    assert re.search(r"split part +train \(1 of 3 frames; val .*seed 0\)", summarize(train).table())


def test_dataset_info_cli(tmp_path):
    path = _dataset().to_hdf5(tmp_path / "d.h5")
    out = tmp_path / "s.json"
    result = CliRunner().invoke(main, ["dataset", "info", str(path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "ring_size" in result.output
    assert json.loads(out.read_text())["properties"]["ring_size"]["mean"] == pytest.approx(7.0)


def test_dataset_info_json_dash_goes_to_stdout(tmp_path):
    path = _dataset().to_hdf5(tmp_path / "d.h5")
    result = CliRunner().invoke(main, ["dataset", "info", str(path), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["properties"]["ring_size"]["mean"] == pytest.approx(7.0)
    assert "ring_size" in result.stderr


def test_dataset_info_unknown_dataset_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["dataset", "info", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2
    assert "neither a file nor a shipped dataset" in result.output


def test_dataset_info_refuses_folders_and_unwritable_json_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["dataset", "info", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a folder; give an HDF5 or extxyz file" in result.output
    summary = tmp_path / "no-folder" / "s.json"
    result = CliRunner().invoke(main, ["dataset", "info", "a-si-anneal", "--json", str(summary)])
    assert result.exit_code == 2
    assert f"cannot write {summary}: folder" in result.output
    assert "Traceback" not in result.output


def test_dataset_info_plot_draws_one_histogram_per_label(tmp_path):
    path = _dataset().to_hdf5(tmp_path / "d.h5")
    png = tmp_path / "labels.png"
    result = CliRunner().invoke(main, ["dataset", "info", str(path), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(
        main, ["dataset", "info", str(path), "--plot", str(tmp_path / "x.foo")]
    )
    assert bad.exit_code == 2 and "unknown figure format 'foo'" in bad.output


def test_a_label_spanning_decades_is_binned_in_log10():
    from amtoolkit.data.summary import dataset_figure

    si = bulk("Si", "diamond", 5.431, cubic=True)
    rates = [0.1, 0.1, 1.0, 10.0, 100.0, 100.0]  # K/ps, as the DM2 glasses
    data = Dataset.from_atoms(
        [si] * 6, properties={"cooling_rate": rates, "shear_modulus": [30.0] * 5 + [31.0]}
    )
    axes = {ax.get_xlabel(): ax for ax in dataset_figure(data).axes if ax.get_visible()}
    rate_axis = next(ax for label, ax in axes.items() if label.startswith("cooling_rate"))
    assert rate_axis.get_xscale() == "log"
    counts = [p.get_height() for p in rate_axis.patches]
    assert counts[0] == 2 and counts[-1] == 2  # not 5 of 6 in the first linear bin
    shear_axis = next(ax for label, ax in axes.items() if label.startswith("shear_modulus"))
    assert shear_axis.get_xscale() == "linear"
    atoms_axis = axes["atoms per structure"]
    assert atoms_axis.xaxis.get_major_formatter().get_useOffset() is False


def test_dataset_info_plot_of_an_empty_dataset_is_refused(tmp_path):
    from amtoolkit.data.summary import plot_dataset

    with pytest.raises(ValueError, match="nothing to plot: the dataset holds no structures"):
        plot_dataset(_dataset().subset([]), tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_a_merged_set_lists_its_parts_unstable_and_unconverged_samples():
    part = {"samples": [{"index": 0}, {"index": 3, "elastic_unstable": True}]}
    provenance = {
        "command": "amtool dataset merge a.h5 b.h5 -o ab.h5",
        "parts": [
            {"name": "a.h5", "frames": 1, "provenance": part},
            {"name": "b.h5", "frames": 1, "provenance": {"samples": [{"index": 1}]}},
        ],
    }
    ds = Dataset.from_atoms(list(_dataset())[:2], provenance=provenance)
    table = summarize(ds).table()
    assert re.search(r"unstable C +in 1 samples \(3\) of a.h5", table)
    assert "of b.h5" not in table


def test_label_links_name_what_each_label_tracks_and_flag_scatter():
    from amtoolkit.data.summary import label_links

    rng = np.random.default_rng(0)
    density = rng.normal(2.2, 0.1, 60)
    properties = {
        "density": density,
        "shear_modulus": 30 + 40 * (density - 2.2) + rng.normal(0, 0.5, 60),  # tracks density
        "bulk_modulus": rng.normal(60, 5, 60),  # scatter: only its fit siblings would link
        "youngs_modulus": rng.normal(70, 5, 60),
        "cooling_rate": np.full(60, 10.0),  # constant: no link either way
    }
    links = label_links(properties)
    assert links["shear_modulus"][0] == "density" and links["shear_modulus"][1] > 0.9
    assert links["bulk_modulus"][0] == "density"  # not youngs_modulus, a sibling of one fit
    assert abs(links["bulk_modulus"][1]) < 0.3 and "cooling_rate" not in links
    assert label_links({k: v[:10] for k, v in properties.items()}) == {}  # too few structures
    atoms = [Atoms("Si", cell=[3.0] * 3, pbc=True) for _ in range(60)]
    table = summarize(Dataset.from_atoms(atoms, properties)).table()
    assert re.search(r"shear_modulus tracks +density \(Spearman \+0\.9\d\)", table)
    assert re.search(r"note +bulk_modulus, youngs_modulus track\(s\) no other label", table)
