"""`NoiseEnergyCalculator`: the noise energy of an energy-based denoiser as an ASE calculator.

The learned noise energy E_hat(x, t) = S(x, t) / sigma_X(t) of `amtoolkit.nn.EnergyDenoiser`
at a fixed diffusion time t is a smooth, translation- and rotation-invariant function of
the positions, so ASE's dynamics and optimisers (VelocityVerlet, Langevin, FIRE, BFGS)
and the HMC driver `amtoolkit.hmc.HMC` can run on it unchanged. Units: E_hat is
dimensionless (in units of k_B T = 1) and reported as "eV"; forces -grad_X E_hat are in
"eV"/Å. E_hat is not a physical energy: its minima are the structures the model finds
most likely at noise level sigma_X(t).

References:
    AMDEN (energy-based denoiser, HMC denoising); docs/energy.md; ASE
    ``ase/calculators/lj.py`` for the calculator layout.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from amtoolkit.analysis._options import keyword_names, nearest
from amtoolkit.analysis._structures import check_structure
from amtoolkit.analysis.energy import density
from amtoolkit.checkpoint import usable_device
from amtoolkit.data.batch import Batch, from_atoms
from amtoolkit.data.vocabulary import ElementVocabulary
from amtoolkit.diffusion._batch_ops import remove_system_mean
from amtoolkit.diffusion.schedules import MaterialSDE
from amtoolkit.errors import StructureError, user_stacklevel

__all__ = ["NoiseEnergyCalculator", "check_atoms", "noise_energy", "property_row"]


ASE_KEYWORDS = keyword_names(Calculator.__init__)
"""Keywords of ASE's `Calculator` constructor (``restart``, ``label``, ``atoms``,
``directory`` ...) that `NoiseEnergyCalculator` passes on; any other is refused."""

KEYWORD_HINTS = {
    "time": "did you mean 't'?",
    "diffusion_time": "did you mean 't'?",
    "sigma": "sigma_X(t) follows from t",
}
"""Hints for keywords that are no close spelling of a parameter but mean one."""

GHOST_COUNT_TOLERANCE = 0.1
"""Relative difference of the atom count, ghosts included, from floor(max_density V)
beyond which `NoiseEnergyCalculator` warns."""


def noise_energy(
    model: Any,
    batch: Batch,
    t: float,
    sde: MaterialSDE,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise energy, forces and per-atom energies of every system of a batch.

    E_hat = S / sigma_X(t), F = -grad_X E_hat (mean-free per system, like eps_x) and
    e_i / sigma_X(t), from one forward and backward pass of the model.

    Args:
        model: an `amtoolkit.nn.EnergyDenoiser` (its `potential_gradients`).
        batch: the systems (elements one-hot, properties normalised, NaN = null).
        t: diffusion time of the energy, in (0, 1).
        sde: the diffusion process (sigma_X).
        generator: source of the null-embedding draws.

    Returns:
        E_hat [S], forces [N, 3] (1/Å), per-atom energies [N], all detached.
    """
    dtype, device = batch.positions.dtype, batch.positions.device
    t_systems = torch.full((batch.n_systems,), float(t), dtype=dtype, device=device)
    total, per_atom, grad_x, _ = model.potential_gradients(batch, t_systems, generator=generator)
    sigma = float(sde.sigma_x(float(t)))
    forces = -remove_system_mean(grad_x, batch.system_idx, batch.n_systems) / sigma
    return total / sigma, forces, per_atom / sigma


def property_row(
    targets: Mapping[str, float | None] | None,
    property_names: Sequence[str],
    normalisation: Mapping[str, tuple[float, float]],
) -> np.ndarray:
    """Normalised property row of a model: (y - mean) / std per property, NaN = null.

    Args:
        targets: property -> raw value (property names or the aliases of
            `amtoolkit.generator.PROPERTY_ALIASES`); None or NaN values, and properties not
            named, are null.
        property_names: the model's properties, in column order.
        normalisation: property -> (mean, std), raw units.

    Returns:
        The row ``[m]`` (float64).
    """
    from amtoolkit.data.properties import check_physical
    from amtoolkit.generator import resolve_property  # light: no model is loaded

    row = np.full(len(property_names), np.nan)
    for key, value in (targets or {}).items():
        name = resolve_property(key, property_names)
        value = math.nan if value is None else float(value)
        if not math.isnan(value):
            check_physical(name, value)
        mean, std = normalisation.get(name, (0.0, 1.0))
        row[list(property_names).index(name)] = (value - mean) / std
    return row


def _check_keywords(given: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    """Raise TypeError naming the first keyword of `given` not in `known` (with the
    closest known one, or a `KEYWORD_HINTS` hint), and the known ones."""
    from amtoolkit.data.properties import PROPERTY_UNITS
    from amtoolkit.generator import PROPERTY_ALIASES

    for key in given:
        if key not in known:
            close = nearest(key, known)
            hint = KEYWORD_HINTS.get(key) or (f"did you mean {close!r}?" if close else "")
            if key in PROPERTY_UNITS or key in PROPERTY_ALIASES:  # a target given as generate's
                hint = f"a target goes in targets={{{key!r}: ...}}"
            hint = f" ({hint})" if hint else ""
            raise TypeError(
                f"{where} got an unknown keyword {key!r}{hint}; it takes {', '.join(known)}"
            )


def check_atoms(atoms: Any, who: str, hint: str = "") -> None:
    """Raise TypeError unless `atoms` is one `ase.Atoms`; the message names what it is
    (with `hint`, what to do instead, when it is a list of Atoms)."""
    if isinstance(atoms, Atoms):
        return
    got = type(atoms).__name__
    if isinstance(atoms, (list, tuple)) and atoms and all(isinstance(a, Atoms) for a in atoms):
        raise TypeError(
            f"{who} takes one ase.Atoms, got a {got} of {len(atoms)}: one structure at a time"
            + (f" ({hint})" if hint else "")
        )
    raise TypeError(f"{who} takes an ase.Atoms, got {got}")


def checked_t(t: Any) -> float:
    """The diffusion time `t` as a float in (0, 1); ValueError otherwise."""
    t = float(t)
    if not 0.0 < t < 1.0:
        raise ValueError(f"t must lie in (0, 1), got {t}")
    return t


class NoiseEnergyCalculator(Calculator):
    """ASE calculator of the noise energy E_hat(x, t) of an energy-based denoiser.

    Accepts an `amtoolkit.Generator` (whose model card provides the sde, vocabulary,
    normalisation and max_density), what `Generator.load` takes (a shipped model's name
    such as ``"a-si-energy"``, a checkpoint path), or a bare `amtoolkit.nn.EnergyDenoiser`
    with an explicit `sde` and `vocabulary`; explicit arguments override the card's.

    Properties: "energy" and "free_energy" (E_hat, dimensionless, reported as eV: k_B T = 1
    "eV"), "forces" (-grad_X E_hat, "eV"/Å) and "energies" (e_i / sigma_X(t), summing to
    the energy). No stress: E_hat is not differentiated with respect to the cell.

    Elements are the one-hot classes of the atoms' species in the model vocabulary (an
    element outside it raises a ValueError naming it). Atoms with atomic number 0
    (symbol ``X``) are the model's ghost class; the calculator does not add ghosts, so
    pass atoms with ``X`` atoms where the model expects them (`max_density` is kept for
    reference: models trained with ghosts saw floor(max_density V) atoms per cell).

    Targets are normalised with the model's normalisation; absent ones (NaN or not
    named) get the model's null embedding, a N(0, I) draw made from a generator seeded
    with `seed` at every evaluation, so the energy of a structure is deterministic (on
    CUDA up to the round-off of the order of atomic additions). The
    model builds its neighbour graph inside each evaluation; ASE's `check_state` makes
    the calculator evaluate only when positions, cell, numbers or pbc change.

    Args:
        model: an `amtoolkit.Generator` (``.model`` and ``.info``), a shipped model's name
            or a checkpoint (loaded with `Generator.load`), or an EnergyDenoiser.
        t: diffusion time of the energy, in (0, 1) (sigma_X(t) sets its scale).
        targets: property -> raw target value (aliases as in `Generator.generate`).
        device: torch device of the model (default: where its weights are). The model,
            shared with a Generator passed in, is moved there and put in eval mode.
        sde: the diffusion process (required for a bare model).
        vocabulary: the element classes (required for a bare model).
        normalisation: property -> (mean, std) (default: the card's, else identity).
        max_density: ghost maximum number density, atoms/Å^3 (default: the card's).
        seed: seed of the null-embedding draws.
        **kwargs: ASE's constructor keywords (`ASE_KEYWORDS`: ``label``, ``atoms``,
            ``directory`` ...), passed to `ase.calculators.calculator.Calculator`.

    Attributes:
        model_name: the model card's name (a bare model: its class name), as the repr
            shows it with `t` and the targets.

    Raises:
        TypeError: an unknown keyword (in the constructor and in ``set``), named with
            the accepted ones.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies"]
    default_parameters: dict[str, Any] = {"t": 0.05, "targets": None}
    discard_results_on_any_change = True

    def __init__(
        self,
        model: Any,
        t: float = 0.05,
        targets: Mapping[str, float | None] | None = None,
        device: torch.device | str | None = None,
        sde: MaterialSDE | None = None,
        vocabulary: ElementVocabulary | None = None,
        normalisation: Mapping[str, tuple[float, float]] | None = None,
        max_density: float | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        _check_keywords(
            kwargs,
            (*keyword_names(NoiseEnergyCalculator.__init__)[1:], *ASE_KEYWORDS),  # not model
            "NoiseEnergyCalculator",
        )
        if isinstance(model, (str, os.PathLike)):  # a shipped name or a checkpoint, as refine
            from amtoolkit.generator import Generator

            model = Generator.load(model, device="cpu" if device is None else device)
        info = getattr(model, "info", None)
        network = model.model if info is not None and hasattr(model, "model") else model
        if not callable(getattr(network, "potential_gradients", None)):
            got = type(network).__name__
            if info is not None:
                got = f"model {info.name!r} of kind {info.kind!r}"
            raise ValueError(
                "NoiseEnergyCalculator needs an energy-based model (kind 'energy', e.g. "
                f"a-si-energy), got {got}"
            )
        if info is not None:
            sde = info.sde if sde is None else sde
            vocabulary = info.vocabulary if vocabulary is None else vocabulary
            normalisation = info.normalisation if normalisation is None else normalisation
            max_density = info.max_density if max_density is None else max_density
        if sde is None or vocabulary is None:
            raise ValueError("a bare model needs explicit sde= and vocabulary= arguments")
        n_classes = network.config.n_classes
        if len(vocabulary) != n_classes:
            raise ValueError(
                f"vocabulary {vocabulary.symbols} has {len(vocabulary)} classes, the model "
                f"{n_classes}"
            )
        if device is None:
            device = next(network.parameters()).device
        self.device = usable_device(device)
        self.network = network.to(self.device).eval()
        self.sde = sde
        self.vocabulary = vocabulary
        self.property_names: tuple[str, ...] = tuple(network.config.property_names)
        self.normalisation = dict(normalisation or {})
        self.max_density = max_density
        self.typical = info.typical if info is not None else None
        self.seed = int(seed)
        self.model_name = info.name if info is not None else type(network).__name__
        targets = None if targets is None else {str(k): v for k, v in targets.items()}
        super().__init__(t=self._trained_t(t), targets=targets, **kwargs)
        self.properties_row()  # unknown target names fail here, not at the first call

    def __repr__(self) -> str:
        targets = self.parameters["targets"]
        return (
            f"NoiseEnergyCalculator(model={self.model_name!r}, t={self.t:g}"
            + (f", targets={targets!r}" if targets else "")
            + ")"
        )

    def _trained_t(self, t: Any) -> float:
        """`checked_t`, with a warning below the model's smallest training time (once
        per value: ASE's constructor sets the parameters again)."""
        t = checked_t(t)
        if t < self.sde.t_min and t != getattr(self, "_warned_t", None):
            self._warned_t = t
            warnings.warn(
                f"t={t:g} is below the model's smallest training time t_min="
                f"{self.sde.t_min:g}: E_hat and its forces there are extrapolated (they grow "
                "as 1/sigma_X(t))",
                UserWarning,
                stacklevel=3,
            )
        return t

    def set(self, **kwargs: Any) -> dict[str, Any]:
        """Set parameters (``t``, ``targets``); returns those that changed.

        Raises:
            TypeError: another keyword, named with the parameters.
        """
        _check_keywords(kwargs, tuple(self.default_parameters), "NoiseEnergyCalculator.set")
        if "t" in kwargs:
            kwargs["t"] = self._trained_t(kwargs["t"])
        if kwargs.get("targets") is not None:  # unknown names fail here, as at construction
            kwargs["targets"] = {str(k): v for k, v in kwargs["targets"].items()}
            property_row(kwargs["targets"], self.property_names, self.normalisation)
        return super().set(**kwargs)

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        check_atoms(atoms, "NoiseEnergyCalculator")  # not an AttributeError inside ASE
        return super().check_state(atoms, tol)

    @property
    def t(self) -> float:
        """Diffusion time of the energy (a calculator parameter: ``calc.set(t=...)``)."""
        return float(self.parameters["t"])

    @property
    def sigma(self) -> float:
        """sigma_X(t), Å: the scale of E_hat = S / sigma."""
        return float(self.sde.sigma_x(self.t))

    def properties_row(self) -> np.ndarray:
        """The normalised property row of the current targets. [m]"""
        return property_row(self.parameters["targets"], self.property_names, self.normalisation)

    def _check_density(self, atoms: Atoms) -> None:
        """Warn when `atoms` are far from the densities the model was trained at.

        With ghost atoms (`max_density`) the model saw floor(max_density V) atoms per
        cell, ghosts included; without them, real-atom mass densities within the
        training range. Far off either, E_hat is an extrapolation (compressed cells
        reach E_hat of 1e5 and more).
        """
        volume = atoms.get_volume()
        if self.max_density is not None:
            expected = math.floor(self.max_density * volume)
            if abs(len(atoms) - expected) > GHOST_COUNT_TOLERANCE * expected:
                warnings.warn(
                    f"NoiseEnergyCalculator: {len(atoms)} atoms, ghosts (X) included, in "
                    f"{volume:.4g} Å^3; the model saw floor(max_density V) = {expected} per "
                    f"cell (max_density {self.max_density:g} /Å^3): add or remove X atoms",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
            return
        if self.typical is None or self.typical.density_range is None:
            return
        from amtoolkit.generator import far_outside  # light: no model is loaded

        low, high = self.typical.density_range
        rho = density(atoms)
        if far_outside(np.array([rho]), low, high).any():
            warnings.warn(
                f"NoiseEnergyCalculator: density {rho:.3g} g/cm3 is far outside the "
                f"training range [{low:.3g}, {high:.3g}] g/cm3; E_hat there is an "
                "extrapolation",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    @property
    def dtype(self) -> torch.dtype:
        """The model's dtype, as it is now (``model.double()`` changes it)."""
        return next(self.network.parameters()).dtype

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        if atoms is not None:
            check_atoms(atoms, "NoiseEnergyCalculator")
        Calculator.calculate(self, atoms, properties, system_changes)
        if not 0.0 < self.t < 1.0:
            raise ValueError(f"t must lie in (0, 1), got {self.t}")
        if len(self.atoms):  # no atoms: energy 0, no forces
            try:
                check_structure(self.atoms, periodic=True)
            except StructureError as err:
                raise StructureError(f"NoiseEnergyCalculator: {err}") from None
            if {"cell", "numbers"} & set(system_changes):
                self._check_density(self.atoms)
        batch = from_atoms(
            [self.atoms],
            self.vocabulary,
            properties={
                n: [v] for n, v in zip(self.property_names, self.properties_row(), strict=True)
            },
            property_names=self.property_names,
            dtype=self.dtype,  # read now: model.double() after building the calculator
        ).to(device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        energy, forces, energies = noise_energy(self.network, batch, self.t, self.sde, generator)
        value = float(energy[0])
        self.results = {
            "energy": value,
            "free_energy": value,
            "forces": forces.cpu().double().numpy(),
            "energies": energies.cpu().double().numpy(),
        }
