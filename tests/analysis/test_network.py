"""Q^n speciation and anion types: known crystals with known defects, a brute-force
count on random cells, formers and modifiers, report and CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from amtoolkit.analysis.network import network
from amtoolkit.analyzer import Analyzer
from tests.analysis.test_coordination import beta_cristobalite, random_sio2

SI_O_CUTOFF = 2.30  # Å, the covalent rule 1.3 (r_Si + r_O) to 0.01


def test_cristobalite_is_all_q4_with_bridging_oxygen():
    result = network(beta_cristobalite())
    assert result.qn == {"Si": {4: 1.0}}
    assert result.connectivity == {"Si": 4.0}
    assert result.anion_types == {
        "free": 0.0,
        "non-bridging": 0.0,
        "bridging": 1.0,
        "over-coordinated": 0.0,
    }
    assert result.per_structure == [{"Si": 4.0, "bridging": 1.0}]


def test_a_missing_silicon_leaves_four_q3_and_four_non_bridging_oxygens():
    cell = beta_cristobalite().repeat(2)  # 64 Si, 128 O
    del cell[0]  # a Si: its 4 O lose a former, their other Si a bridge
    result = network(cell)
    assert result.qn["Si"] == pytest.approx({3: 4 / 63, 4: 59 / 63})
    assert result.connectivity["Si"] == pytest.approx((4 * 3 + 59 * 4) / 63)
    assert result.anion_types["non-bridging"] == pytest.approx(4 / 128)
    assert result.anion_types["bridging"] == pytest.approx(124 / 128)


def test_a_missing_oxygen_leaves_two_q3():
    cell = beta_cristobalite().repeat(2)
    oxygen = int(np.flatnonzero(cell.numbers == 8)[0])
    del cell[oxygen]
    result = network(cell)
    assert result.qn["Si"] == pytest.approx({3: 2 / 64, 4: 62 / 64})
    assert result.anion_types["bridging"] == 1.0


def brute_force_qn(atoms: Atoms, cutoff: float) -> dict[int, int]:
    """Q^n counts from ASE's neighbour list, one Si and one O at a time."""
    i, j = ase_neighbor_list("ij", atoms, cutoff)
    numbers = atoms.numbers
    si_o = (numbers[i] == 14) & (numbers[j] == 8)
    formers_of = {o: int(np.sum(si_o & (j == o))) for o in np.flatnonzero(numbers == 8)}
    counts: dict[int, int] = {}
    for si in np.flatnonzero(numbers == 14):
        bonded = j[si_o & (i == si)]
        n = sum(formers_of[o] >= 2 for o in bonded)
        counts[n] = counts.get(n, 0) + 1
    return counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cells_match_a_brute_force_count(seed):
    atoms = random_sio2(seed)
    counts = brute_force_qn(atoms, SI_O_CUTOFF)
    result = network(atoms, {("Si", "O"): SI_O_CUTOFF})
    assert result.qn["Si"] == pytest.approx({n: c / 16 for n, c in counts.items()})
    assert network(atoms).qn == result.qn  # the covalent rule bonds Si-O at 2.30 Å too


def test_pooled_over_a_set_and_per_structure():
    frames = [beta_cristobalite(), random_sio2(0)]
    pooled = network(frames)
    one = network(frames[1])
    assert len(pooled.per_structure) == 2
    assert pooled.per_structure[1] == one.per_structure[0]
    expected_q4 = (8 + 16 * one.qn["Si"].get(4, 0.0)) / 24  # 8 + 16 Si
    assert pooled.qn["Si"][4] == pytest.approx(expected_q4)


def test_a_reference_without_oxygen_drops_the_comparison_with_a_warning():
    silicon = bulk("Si", "diamond", a=5.431, cubic=True)
    with pytest.warns(UserWarning) as caught:
        report = Analyzer().report([beta_cristobalite()], ["network"], reference=[silicon])
    assert any("reference: no Q^n comparison" in str(w.message) for w in caught)
    assert any("compare different compositions" in str(w.message) for w in caught)
    assert "network" in report.results and "network" not in report.reference_results


def test_modifiers_are_not_formers_and_formers_can_be_named():
    atoms = beta_cristobalite()
    atoms.symbols[0] = "Na"  # a modifier where a Si was: its O become non-bridging
    result = network(atoms)
    assert list(result.qn) == ["Si"] and result.modifiers == ["Na"]
    assert result.anion_types["non-bridging"] == pytest.approx(4 / 16)
    both = network(atoms, formers=["Si", "Na"])
    assert set(both.qn) == {"Na", "Si"} and both.anion_types["bridging"] == 1.0
    assert both.modifiers == []


def test_an_aluminosilicate_summary_names_al_and_the_cli_counts_it_as_a_former(tmp_path):
    from click.testing import CliRunner

    from amtoolkit.cli import main

    atoms = beta_cristobalite().repeat(2)
    atoms.symbols[[k for k, z in enumerate(atoms.numbers) if z == 14][:4]] = "Al"
    path = tmp_path / "alumino.extxyz"
    atoms.write(path)
    plain = CliRunner().invoke(main, ["analyze", str(path), "--network"])
    assert plain.exit_code == 0, plain.output
    assert "other cations               Al (--formers Si,Al counts intermediates" in plain.output
    assert "bridging 0.898" in plain.output  # O next to an Al does not bridge
    named = CliRunner().invoke(main, ["analyze", str(path), "--formers", "Si,Al", "--json", "-"])
    assert named.exit_code == 0, named.output  # --formers implies --network
    data = json.loads(named.stdout[named.stdout.index("{") :])
    assert set(data["network"]["qn"]) == {"Si", "Al"}
    assert data["network"]["anion_types"]["bridging"] == 1.0
    empty = CliRunner().invoke(main, ["analyze", str(path), "--formers", ","])
    assert empty.exit_code == 2 and "--formers names no element" in empty.output
    absent = CliRunner().invoke(main, ["analyze", str(path), "--formers", "Si,Xx"])
    assert absent.exit_code == 2
    assert absent.stderr.strip() == (
        "amtool: error: --formers Xx: not a cation of the frames (elements Al, O, Si)"
    )


def test_bad_input_names_the_problem():
    silicon = Atoms("Si2", positions=[[0, 0, 0], [1.2, 1.2, 1.2]], cell=5 * np.eye(3), pbc=True)
    with pytest.raises(ValueError, match="the structure has no O atoms \\(elements Si\\)"):
        network(silicon)
    with pytest.raises(ValueError, match="frame 1 has no O atoms \\(elements Si\\)"):
        network([beta_cristobalite(), silicon])  # its Si would be pooled in as Q^0
    with pytest.raises(ValueError, match="anion 'Si' is not one of N, O, F, S, Cl"):
        network(beta_cristobalite(), anion="Si")
    alumina = beta_cristobalite()
    alumina.symbols[alumina.numbers == 14] = "Al"
    with pytest.raises(ValueError, match="no network former \\(B, Si, P, Ge, As\\)"):
        network(alumina)
    assert network(alumina, formers="Al").qn == {"Al": {4: 1.0}}
    with pytest.raises(ValueError, match="formers \\['Ge'\\] are not cations"):
        network(beta_cristobalite(), formers="Ge")
    with pytest.raises(ValueError, match="formers \\['O'\\] are not cations"):
        network(beta_cristobalite(), formers=["O"])


def test_report_summary_reference_rows_and_plot(tmp_path):
    cell = beta_cristobalite().repeat(2)
    del cell[0]
    report = Analyzer().report([cell], ["network"], reference=[beta_cristobalite()])
    text = report.summary()
    assert "Si connectivity <n>         3.937  (Q3: 0.063, Q4: 0.937)" in text
    assert "Si connectivity <n>     3.937 vs 4.000" in text
    assert "bridging O fraction     0.969 vs 1.000" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["network"]["qn"]["Si"] == pytest.approx({"3": 4 / 63, "4": 59 / 63})
    report.plot(tmp_path / "network.png")
    assert (tmp_path / "network.png").stat().st_size > 0


def test_cli_network_flag(tmp_path):
    from click.testing import CliRunner

    from amtoolkit.cli import main

    path = tmp_path / "cristobalite.extxyz"
    beta_cristobalite().write(path)
    out = CliRunner().invoke(main, ["analyze", str(path), "--network"])
    assert out.exit_code == 0, out.output
    assert "Si connectivity <n>         4.000  (Q4: 1.000)" in out.output
    assert "O types                     bridging 1.000" in out.output
    bad = CliRunner().invoke(main, ["analyze", "example:a-si", "--network"])
    assert bad.exit_code != 0 and "has no O atoms (elements Si)" in bad.output
