"""NoiseEnergyCalculator (forces = -grad E_hat, ASE dynamics and optimisers, elements,
targets, determinism, caching) and the ASE HMC driver (agreement with batched HMC)."""

from __future__ import annotations

import dataclasses
import io
import math
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.fd import calculate_numerical_forces
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE

from amtoolkit.calculator import NoiseEnergyCalculator, noise_energy
from amtoolkit.checkpoint import ModelInfo, Typical, save_checkpoint
from amtoolkit.data.batch import from_atoms
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.diffusion import MaterialSDE, hmc_step, noise_energy_fn
from amtoolkit.generator import Generator
from amtoolkit.hmc import HMC
from amtoolkit.nn import EnergyDenoiser
from tests.nn.helpers import PROPERTY_NAMES, tiny_config
from tests.test_generator import save_tiny_model

T = 0.05
SDE = MaterialSDE()
VOCABULARY = ElementVocabulary(["Si", "O"])  # X, Si, O: the 3 classes of tiny_config
NORMALISATION = {"shear_modulus": (30.0, 5.0), "ring_size": (6.0, 1.0)}
FD_ATOL = 1e-6  # "eV"/Å; forces are O(1), central differences with eps = 1e-5 Å
AGREEMENT_ATOL = 1e-8  # Å, batched HMC vs the ASE driver (float64)
AGREEMENT_ATOL_FLOAT32 = 1e-2  # Å, float32 (the shipped precision): round-off grows ~7x a move here


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: threads only add contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def energy_model(property_names=()) -> EnergyDenoiser:
    torch.manual_seed(0)
    config = tiny_config(kind="energy", property_names=property_names)
    return EnergyDenoiser(config).double().eval()


def structure(seed: int = 0, symbols: str = "Si4O8") -> Atoms:
    rng = np.random.default_rng(seed)
    n = len(Atoms(symbols))
    return Atoms(symbols, positions=rng.uniform(0, 5, (n, 3)), cell=5.0 * np.eye(3), pbc=True)


def calculator(model=None, **kwargs) -> NoiseEnergyCalculator:
    model = energy_model() if model is None else model
    return NoiseEnergyCalculator(model, t=T, sde=SDE, vocabulary=VOCABULARY, **kwargs)


def with_calc(atoms: Atoms, calc=None) -> Atoms:
    atoms.calc = calculator() if calc is None else calc
    return atoms


def test_forces_are_minus_the_energy_gradient():
    atoms = with_calc(structure())
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0.1  # not trivially small
    numerical = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(forces, numerical, atol=FD_ATOL, rtol=0)
    np.testing.assert_allclose(atoms.get_potential_energies().sum(), atoms.get_potential_energy())
    assert atoms.get_potential_energy() == atoms.calc.get_property("free_energy")


def test_energy_and_forces_are_the_models_noise_energy_and_score():
    """E = S / sigma_X(t) = E_hat and F = -eps_x / sigma_X(t) = s_X, the sampler's score."""
    model = energy_model()
    atoms = with_calc(structure(), calculator(model))
    batch = from_atoms([atoms], VOCABULARY, dtype=torch.float64)
    t = torch.tensor([T], dtype=torch.float64)
    sigma = float(SDE.sigma_x(T))
    with torch.no_grad():
        energy = float(model.energy(batch, t, SDE)[0])
        eps_x, _ = model(batch, t)
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), -eps_x.numpy() / sigma, atol=1e-10)


def test_energy_scales_with_t_through_sigma():
    atoms = with_calc(structure())
    e1 = atoms.get_potential_energy()
    s1 = e1 * atoms.calc.sigma
    atoms.calc.set(t=0.2)  # a parameter change discards the results
    e2 = atoms.get_potential_energy()
    assert e2 != e1 and atoms.calc.sigma == pytest.approx(0.3)
    assert np.isfinite(s1) and np.isfinite(e2)


def test_results_are_cached_until_the_structure_changes():
    calc = calculator()
    atoms = with_calc(structure(), calc)
    calls = []
    inner = calc.network.potential_gradients

    def counting(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    calc.network.potential_gradients = counting
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_potential_energies()
    assert len(calls) == 1
    atoms.positions[0, 0] += 0.1
    atoms.get_forces()
    assert len(calls) == 2


def test_unknown_element_and_bad_structures_raise():
    atoms = with_calc(structure(symbols="Si4O7Fe"))
    with pytest.raises(ValueError, match="Fe"):
        atoms.get_potential_energy()
    cluster = with_calc(structure())
    cluster.pbc = False
    with pytest.raises(ValueError, match="not periodic in all three directions"):
        cluster.get_potential_energy()
    flat = with_calc(structure())
    flat.cell[2] = 0.0
    with pytest.raises(ValueError, match="^NoiseEnergyCalculator: cell has zero volume"):
        flat.get_potential_energy()
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        calculator(device="gpu")
    with pytest.raises(ValueError, match="sde= and vocabulary="):
        NoiseEnergyCalculator(energy_model())
    with pytest.raises(ValueError, match="energy-based"):
        NoiseEnergyCalculator(torch.nn.Linear(2, 2), sde=SDE, vocabulary=VOCABULARY)
    for t in (0.0, 1.0, 2.0, math.nan):
        with pytest.raises(ValueError, match="t must lie in"):
            NoiseEnergyCalculator(energy_model(), t=t, sde=SDE, vocabulary=VOCABULARY)
    with pytest.raises(ValueError, match=r"t must lie in \(0, 1\), got -0.1"):
        calculator().set(t=-0.1)
    with pytest.warns(UserWarning, match=r"t=0.005 is below the model's smallest training") as w:
        NoiseEnergyCalculator(energy_model(), t=0.005, sde=SDE, vocabulary=VOCABULARY)
    assert len([x for x in w if "below the model" in str(x.message)]) == 1  # said once
    with pytest.warns(UserWarning, match=r"t=0.001 is below"):
        calculator().set(t=0.001)


def test_what_is_not_one_atoms_is_named():
    calc = calculator()
    with pytest.raises(TypeError, match="^NoiseEnergyCalculator takes one ase.Atoms, got a list"):
        calc.get_potential_energy([structure()])
    with pytest.raises(TypeError, match="^NoiseEnergyCalculator takes an ase.Atoms, got ndarray"):
        calc.get_forces(structure().positions)
    with pytest.raises(TypeError, match=r"^HMC takes one ase.Atoms, got a list of 2: .*refine"):
        HMC([with_calc(structure()), with_calc(structure(1))], dt0=0.2)
    with pytest.raises(TypeError, match="^HMC takes an ase.Atoms, got ndarray$"):
        HMC(structure().positions, calculator=calc)


def test_ghost_atoms_are_class_zero():
    atoms = with_calc(structure(symbols="Si4O6X2"))
    energy = atoms.get_potential_energy()
    assert np.isfinite(energy)
    real = with_calc(structure(symbols="Si4O8"))  # same positions, two O instead of X
    assert energy != real.get_potential_energy()


def test_energy_is_deterministic_with_null_targets():
    model = energy_model(PROPERTY_NAMES)
    kwargs = {"normalisation": NORMALISATION}
    energies = [
        with_calc(structure(), calculator(model, **kwargs)).get_potential_energy() for _ in range(2)
    ]
    assert energies[0] == energies[1]
    other_seed = with_calc(structure(), calculator(model, seed=1, **kwargs))
    assert other_seed.get_potential_energy() != energies[0]  # another null embedding


def tiny_generator(name: str) -> Generator:
    """An untrained energy model with a card naming it `name`."""
    model = energy_model(PROPERTY_NAMES)
    info = ModelInfo(
        name=name, model=model.config, sde=SDE, vocabulary=VOCABULARY, normalisation=NORMALISATION
    )
    return Generator(model, info)


def test_generator_card_and_normalised_targets():
    generator = tiny_generator("tiny")
    model = generator.model
    calc = NoiseEnergyCalculator(generator, t=T, targets={"shear": 40.0})
    np.testing.assert_array_equal(calc.properties_row(), [2.0, np.nan])
    atoms = with_calc(structure(), calc)
    batch = from_atoms([atoms], VOCABULARY, dtype=torch.float64)
    batch = batch.replace(properties=torch.tensor([[2.0, math.nan]], dtype=torch.float64))
    expected, forces, _ = noise_energy(model, batch, T, SDE, torch.Generator().manual_seed(0))
    assert atoms.get_potential_energy() == pytest.approx(float(expected[0]), abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), forces.numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="unknown target"):
        NoiseEnergyCalculator(generator, targets={"hardness": 1.0})
    with pytest.raises(ValueError, match="unknown target"):
        calc.set(targets={"hardness": 1.0})  # at once, not at the next evaluation
    with pytest.raises(ValueError, match="shear_modulus=-5 is not physical"):
        calc.set(targets={"shear": -5.0})
    assert calc.parameters["targets"] == {"shear": 40.0}


def test_cells_far_from_the_training_density_warn_once_per_cell():
    """Compressed cells (E_hat 1e5 and more) and ghost counts the model never saw warn
    when the cell or atoms change, not at every move of the positions."""
    model = energy_model()
    atoms = structure()  # Si4O8 in 125 Å^3: 3.19 g/cm3
    typical = Typical(
        n_atoms=12, density=3.2, composition={"Si": 1 / 3, "O": 2 / 3}, density_range=(3.1, 3.3)
    )
    info = ModelInfo(name="tiny", model=model.config, sde=SDE, vocabulary=VOCABULARY)
    calc = NoiseEnergyCalculator(Generator(model, dataclasses.replace(info, typical=typical)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with_calc(atoms, calc).get_potential_energy()  # in range: silent
    atoms.set_cell(0.8 * atoms.cell, scale_atoms=True)  # 6.24 g/cm3
    with pytest.warns(UserWarning, match=r"density 6.24 g/cm3 is far outside .*\[3.1, 3.3\]") as w:
        atoms.get_potential_energy()
    assert w[0].filename == __file__  # the user's line, not ASE's calculator code
    atoms.positions += 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.get_potential_energy()  # same cell: checked already

    ghosts = NoiseEnergyCalculator(Generator(model, dataclasses.replace(info, max_density=0.1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with_calc(structure(symbols="Si4O6X2"), ghosts).get_potential_energy()  # 12 = 0.1 V
    with pytest.warns(UserWarning, match=r"8 atoms, ghosts \(X\) included.* = 12 per cell"):
        with_calc(structure(symbols="Si4O4"), ghosts).get_potential_energy()


def test_structures_without_pairs_in_range_have_zero_forces():
    """No pair within the cutoff: the energy is the atoms' own terms, the forces zero."""
    far = Atoms("Si2", positions=[[0, 0, 0], [9.0, 0, 0]], cell=20 * np.eye(3), pbc=True)
    far = with_calc(far)
    assert np.isfinite(far.get_potential_energy())
    np.testing.assert_array_equal(far.get_forces(), np.zeros((2, 3)))
    empty = with_calc(Atoms(cell=20 * np.eye(3), pbc=True))
    assert empty.get_potential_energy() == 0.0 and empty.get_forces().shape == (0, 3)


def test_checkpoint_round_trip_through_generator(tmp_path):
    """An energy model saved as a checkpoint loads (kind "energy") and gives the same E_hat."""
    model = energy_model()
    info = ModelInfo(name="tiny-energy", model=model.config, sde=SDE, vocabulary=VOCABULARY)
    save_checkpoint(tmp_path / "tiny", model, info)
    loaded = Generator.from_checkpoint(tmp_path / "tiny")
    assert isinstance(loaded.model, EnergyDenoiser)
    expected = with_calc(structure(), calculator(model)).get_potential_energy()
    loaded_calc = NoiseEnergyCalculator(loaded, t=T)
    energy = with_calc(structure(), loaded_calc).get_potential_energy()
    assert energy == pytest.approx(expected, rel=1e-5)  # weights may load as float32


# ----------------------------------------------------------------- ASE dynamics


def test_velocity_verlet_conserves_noise_energy_plus_kinetic():
    atoms = with_calc(structure())
    rng = np.random.default_rng(1)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses())[:, None])
    total0 = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    drifts, exchanged = [], []
    for dt in (1.0, 0.5):  # same trajectory (10 fs), half the step
        moving = atoms.copy()
        moving.set_momenta(atoms.get_momenta())
        with_calc(moving)
        VelocityVerlet(moving, timestep=dt * units.fs).run(int(10 / dt))
        drifts.append(abs(moving.get_potential_energy() + moving.get_kinetic_energy() - total0))
        exchanged.append(abs(moving.get_potential_energy() - atoms.get_potential_energy()))
    assert drifts[0] < 1e-2 * exchanged[0]  # E_hat and kinetic energy trade, the sum stays
    assert drifts[1] < drifts[0] / 2  # second-order integrator: error ~ dt^2


def test_langevin_fire_and_bfgs_run_on_the_noise_energy():
    atoms = with_calc(structure())
    start = atoms.positions.copy()
    Langevin(
        atoms,
        timestep=1.0 * units.fs,
        temperature_K=300,
        friction=0.01,
        fixcm=False,
        rng=np.random.default_rng(0),
    ).run(5)
    assert np.isfinite(atoms.get_potential_energy())
    assert np.abs(atoms.positions - start).max() > 1e-4
    for optimiser in (FIRE, BFGS):
        relaxing = with_calc(structure())
        start = relaxing.get_potential_energy()
        optimiser(relaxing, logfile=None).run(fmax=1e-3, steps=10)
        assert relaxing.get_potential_energy() < start


# ----------------------------------------------------------------- ASE HMC driver


@pytest.mark.parametrize(
    ("dtype", "atol"), [(torch.float64, AGREEMENT_ATOL), (torch.float32, AGREEMENT_ATOL_FLOAT32)]
)
def test_ase_driver_matches_batched_hmc(dtype, atol):
    """Same model, structure and seed: same accept decisions and positions, in the
    model's precision (the driver integrates in float64, the batched path in the model's)."""
    model = energy_model().to(dtype)
    dt0, n_leapfrog, seed = 10.0, 8, 3  # large steps: some moves are rejected
    atoms = with_calc(structure(), calculator(model))
    driver = HMC(atoms, dt0=dt0, n_leapfrog=n_leapfrog, seed=seed)
    state = from_atoms([structure()], VOCABULARY, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    decisions = []
    for _ in range(6):
        accepted_ase = driver.step()
        energy_fn = noise_energy_fn(model, state, T, SDE)
        state, accepted, _ = hmc_step(
            energy_fn, state, float(SDE.sigma_x(T)) * dt0, n_leapfrog, generator
        )
        decisions.append(accepted_ase)
        assert accepted_ase == bool(accepted[0])
        np.testing.assert_allclose(atoms.positions, state.positions.numpy(), atol=atol, rtol=0)
    assert any(decisions) and not all(decisions)
    assert driver.acceptance == pytest.approx(sum(decisions) / 6)


def test_ase_driver_small_steps_restore_masses_and_momenta_and_log():
    atoms = with_calc(structure())
    masses = atoms.get_masses().copy()
    log = io.StringIO()
    driver = HMC(atoms, dt0=1e-4, t=0.1, seed=0, logfile=log)
    assert atoms.calc.t == 0.1 and driver.dt == pytest.approx(1.5 * 0.1 * 1e-4)
    start = atoms.positions.copy()
    assert driver.run(3) == 1.0
    assert np.abs(atoms.positions - start).max() > 0  # it moved
    np.testing.assert_array_equal(atoms.get_masses(), masses)
    np.testing.assert_array_equal(atoms.get_momenta(), np.zeros((len(atoms), 3)))
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].split()[:3] == ["HMC", "iter", "accept"]
    # the same seed repeats the chain
    again = with_calc(structure())
    HMC(again, dt0=1e-4, t=0.1, seed=0).run(3)
    np.testing.assert_array_equal(again.positions, atoms.positions)


def test_ase_driver_rejects_a_nonfinite_energy():
    atoms = with_calc(structure())
    driver = HMC(atoms, dt0=0.4, seed=0)
    start = atoms.positions.copy()
    network = atoms.calc.network
    inner = network.potential_gradients

    def broken(*args, **kwargs):
        total, per_atom, grad_x, grad_e = inner(*args, **kwargs)
        return total * math.nan, per_atom, grad_x * math.nan, grad_e

    network.potential_gradients = broken
    assert driver.run(2) == 0.0 and driver.n_nonfinite == 2
    np.testing.assert_array_equal(atoms.positions, start)
    with pytest.raises(ValueError, match="calculator"):
        HMC(structure())


def test_the_model_may_change_precision_after_the_calculator_is_built():
    model = energy_model().float()
    atoms = with_calc(structure(), calculator(model))
    single = atoms.get_potential_energy()
    model.double()  # docs/energy.md: finite differences in float64
    atoms.positions[0, 0] += 1e-3
    double = atoms.get_potential_energy()
    assert atoms.calc.dtype == torch.float64 and np.isfinite(double) and double != single


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time": 0.3}, "unknown keyword 'time' \\(did you mean 't'\\?\\)"),
        ({"target": {"shear": 40.0}}, "unknown keyword 'target' \\(did you mean 'targets'\\?\\)"),
        ({"sigma": 0.1}, "unknown keyword 'sigma' \\(sigma_X\\(t\\) follows from t\\)"),
    ],
)
def test_misspelled_keywords_are_refused_naming_the_accepted_ones(kwargs, message):
    with pytest.raises(TypeError, match=message) as err:
        calculator(**kwargs)
    assert "t, targets, device" in str(err.value) and "label, atoms, directory" in str(err.value)
    calc = calculator(label="noise")  # ASE's own constructor keywords are passed on
    with pytest.raises(
        TypeError, match="unknown keyword 'tt' \\(did you mean 't'\\?\\); it takes t, targets$"
    ):
        calc.set(tt=0.5)
    assert calc.set(t=0.1) == {"t": 0.1}


def test_a_model_name_or_checkpoint_is_loaded(tmp_path):
    stem = save_tiny_model(tmp_path / "e", property_names=(), kind="energy")
    atoms = structure()
    by_path = NoiseEnergyCalculator(str(stem), t=T).get_potential_energy(atoms)
    loaded = NoiseEnergyCalculator(Generator.from_checkpoint(stem), t=T)
    assert by_path == loaded.get_potential_energy(atoms)
    score = save_tiny_model(tmp_path / "s", property_names=())
    with pytest.raises(ValueError, match="energy-based model .*, got model 's' of kind 'score'"):
        NoiseEnergyCalculator(score)


def test_a_property_keyword_is_pointed_to_targets():
    with pytest.raises(
        TypeError, match=r"'density' \(a target goes in targets=\{'density': ...\}\)"
    ):
        NoiseEnergyCalculator(tiny_generator("tiny"), t=T, density=2.3)
    with pytest.raises(TypeError, match=r"'shear' \(a target goes in targets="):
        NoiseEnergyCalculator(tiny_generator("tiny"), t=T, shear=40.0)


def test_the_calculator_and_the_driver_show_their_settings():
    calc = NoiseEnergyCalculator(tiny_generator("tiny-energy"), t=T, targets={"shear": 40.0})
    assert (
        repr(calc) == "NoiseEnergyCalculator(model='tiny-energy', t=0.05, targets={'shear': 40.0})"
    )
    assert repr(calculator()) == "NoiseEnergyCalculator(model='EnergyDenoiser', t=0.05)"
    hmc = HMC(structure(), calculator=calc, dt0=0.2, n_leapfrog=3)
    assert repr(hmc) == "HMC(model='tiny-energy', dt0=0.2, n_leapfrog=3)"
