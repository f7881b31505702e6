"""Readers and writers: extxyz round trips, LAMMPS data type mapping, clear errors."""

from __future__ import annotations

import json
import os
import stat
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from amtoolkit.io import (
    ReadError,
    atomic_output,
    check_writable,
    frame_numbers,
    parse_type_map,
    read_structures,
    write_json,
    write_structures,
)

POSITION_TOL = 1e-8  # Å, text round trip of positions
CHARGE_TOL = 1e-12
UNIT_CONSTANT_TOL = 1e-4  # LAMMPS' and ASE's values of fs differ by ~2e-5 (relative)

LAMMPS_CHARGE_DATA = """\
LAMMPS data file via write_data, version 17 Apr 2024, timestep = 0, units = real

4 atoms
2 atom types

0.0 5.0 xlo xhi
0.0 6.0 ylo yhi
0.0 7.0 zlo zhi

Masses

1 15.9994
2 28.0855

Atoms # charge

3 1 -1.2 1.0 1.0 1.0 0 0 0
1 2 2.4 2.0 2.0 2.0 0 0 0
2 1 -1.2 3.0 3.0 3.0 1 0 0
4 1 -1.2 4.0 4.0 4.0 0 0 0

Velocities

1 0.001 0.0 0.0
2 0.0 0.0 0.0
3 0.0 0.0 0.0
4 0.0 0.0 0.0
"""

LAMMPS_ATOMIC_NO_MASSES = """\
LAMMPS data file

3 atoms
3 atom types

0.0 4.0 xlo xhi
0.0 4.0 ylo yhi
0.0 4.0 zlo zhi

Atoms

1 1 0.5 0.5 0.5
2 2 1.5 1.5 1.5
3 3 2.5 2.5 2.5
"""


@pytest.fixture
def charge_data(tmp_path):
    path = tmp_path / "glass.dat"
    path.write_text(LAMMPS_CHARGE_DATA)
    return path


@pytest.fixture
def atomic_data(tmp_path):
    path = tmp_path / "three.data"
    path.write_text(LAMMPS_ATOMIC_NO_MASSES)
    return path


def test_extxyz_round_trip_keeps_frames_info_and_ghosts(tmp_path):
    frames = []
    for k in range(3):
        atoms = bulk("Si", "diamond", a=5.431, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms += Atoms("X", positions=[[0.1, 0.2, 0.3]])  # a ghost atom (Z = 0)
        atoms.info["shear_modulus"] = 30.0 + k
        atoms.info["cooling_rate"] = 10.0**k
        frames.append(atoms)
    path = write_structures(tmp_path / "set.extxyz", frames)

    read = read_structures(path)
    assert len(read) == 3
    for original, back in zip(frames, read, strict=True):
        assert back.get_chemical_symbols() == original.get_chemical_symbols()
        assert back.numbers[-1] == 0
        np.testing.assert_allclose(back.positions, original.positions, atol=POSITION_TOL)
        np.testing.assert_allclose(back.cell.array, original.cell.array, atol=POSITION_TOL)
        assert back.info["shear_modulus"] == original.info["shear_modulus"]
        assert back.info["cooling_rate"] == original.info["cooling_rate"]


def test_extxyz_index_selects_frames(tmp_path):
    frames = [bulk("Si", "diamond", a=5.0 + 0.1 * k, cubic=True) for k in range(5)]
    path = write_structures(tmp_path / "set.extxyz", frames)
    assert [a.cell[0, 0] for a in read_structures(path, index="1:4:2")] == pytest.approx([5.1, 5.3])
    (last,) = read_structures(path, index=-1)
    assert last.cell[0, 0] == pytest.approx(5.4)


def test_write_structures_leaves_no_temporary_file(tmp_path):
    path = write_structures(tmp_path / "one.extxyz", bulk("Si", "diamond", a=5.431))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.extxyz"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_writes_into_a_missing_folder_or_onto_a_folder_name_the_path(tmp_path):
    target = tmp_path / "no-folder" / "x.json"
    with pytest.raises(FileNotFoundError, match=rf"cannot write {target}: folder .*no-folder does"):
        write_json(target, {"a": 1})
    with pytest.raises(IsADirectoryError, match=rf"cannot write {tmp_path}: it is a folder"):
        write_structures(tmp_path, bulk("Si", "diamond", a=5.431))
    with pytest.raises(FileNotFoundError, match="empty file name"):
        check_writable("")
    assert check_writable(tmp_path / "new.json") == tmp_path / "new.json"


def test_failed_write_keeps_the_old_file(tmp_path):
    path = write_structures(tmp_path / "keep.extxyz", bulk("Si", "diamond", a=5.431))
    before = path.read_text()
    with pytest.raises(TypeError, match="frame 1 is str, not ase.Atoms"):
        write_structures(path, [bulk("Si", "diamond", a=5.431), "not atoms"])
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_output(path) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("disk full")
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.extxyz"]


def test_lammps_charge_style_elements_from_masses(charge_data):
    (atoms,) = read_structures(charge_data)
    # sorted by id: id 1 is Si (type 2), ids 2-4 are O
    assert atoms.get_chemical_symbols() == ["Si", "O", "O", "O"]
    np.testing.assert_allclose(
        atoms.get_initial_charges(), [2.4, -1.2, -1.2, -1.2], atol=CHARGE_TOL
    )
    np.testing.assert_array_equal(atoms.arrays["type"], [2, 1, 1, 1])
    np.testing.assert_allclose(atoms.cell.lengths(), [5.0, 6.0, 7.0])
    # image flag (1 0 0) of id 2 unwraps x by one box length
    np.testing.assert_allclose(atoms.positions[1], [8.0, 3.0, 3.0], atol=POSITION_TOL)
    # element masses, not the file's type masses
    np.testing.assert_allclose(atoms.get_masses()[0], 28.085, atol=1e-3)
    assert atoms.pbc.all()


def test_lammps_real_units_convert_velocities(charge_data):
    from ase.units import fs

    (atoms,) = read_structures(charge_data)
    # units real: 0.001 Å/fs
    np.testing.assert_allclose(
        atoms.get_velocities()[0], [0.001 / fs, 0.0, 0.0], rtol=UNIT_CONSTANT_TOL
    )


def test_lammps_type_map_overrides_masses(charge_data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (atoms,) = read_structures(charge_data, type_map="1=S,2=Ge")
    assert atoms.get_chemical_symbols() == ["Ge", "S", "S", "S"]
    # the masses in the file contradict the map: say so
    assert any("type 1 is S" in str(w.message) for w in caught)


def test_lammps_type_map_dict_and_atomic_style(atomic_data):
    (atoms,) = read_structures(atomic_data, type_map={1: "O", 2: "Si", 3: 3})
    assert atoms.get_chemical_symbols() == ["O", "Si", "Li"]


def test_lammps_unknown_type_names_type_and_file(atomic_data):
    with pytest.raises(ReadError, match=r"three\.data.*type 3 is not in the type map"):
        read_structures(atomic_data, type_map="1=O,2=Si")


def test_lammps_without_masses_or_map_asks_for_a_map(atomic_data):
    with pytest.raises(ReadError, match=r"three\.data.*no Masses section.*type map"):
        read_structures(atomic_data)


def test_lammps_mass_matching_no_element_asks_for_a_map(tmp_path):
    path = tmp_path / "coarse.data"
    path.write_text(
        LAMMPS_CHARGE_DATA.replace("1 15.9994", "1 100.5").replace("2 28.0855", "2 28.0855")
    )
    with pytest.raises(ReadError, match="type 1 has mass 100.5"):
        read_structures(path)


def test_lammps_index_applies_to_the_single_frame(charge_data):
    assert len(read_structures(charge_data, index=0)) == 1
    with pytest.raises(ReadError, match="frame 3 does not exist"):
        read_structures(charge_data, index=3)


def _write_dump(path, columns: str, frames: int = 2) -> Atoms:
    """A LAMMPS text dump of a 2-atom SiO-like cell: type 1 = O, type 2 = Si (`columns`
    is "id type x y z" or with "element" after type)."""
    atoms = Atoms("OSi", positions=[[0.0, 0.0, 0.0], [1.6, 0.1, 0.2]], cell=[5.0] * 3, pbc=True)
    lines = []
    for step in range(frames):
        lines += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", "2"]
        lines += ["ITEM: BOX BOUNDS pp pp pp"] + ["0.0 5.0"] * 3 + [f"ITEM: ATOMS {columns}"]
        for k, (symbol, pos) in enumerate(zip(["O", "Si"], atoms.positions, strict=True)):
            element = f" {symbol}" if "element" in columns else ""
            lines.append(f"{k + 1} {k + 1}{element} {pos[0]} {pos[1]} {pos[2]}")
    path.write_text("\n".join(lines) + "\n")
    return atoms


def test_lammps_dump_types_map_to_elements(tmp_path):
    path = tmp_path / "run.lammpstrj"
    atoms = _write_dump(path, "id type x y z")
    frames = read_structures(path, type_map="1=O,2=Si")
    assert len(frames) == 2
    for frame in frames:
        assert frame.get_chemical_symbols() == ["O", "Si"]
        assert np.allclose(frame.positions, atoms.positions, atol=POSITION_TOL)
        assert frame.get_masses()[1] == pytest.approx(28.085, abs=0.01)  # Si, not He
    with pytest.raises(ReadError, match=r"run.lammpstrj: a LAMMPS dump without an element column"):
        read_structures(path)  # ASE alone would read types 1, 2 as H, He
    with pytest.raises(ReadError, match=r"run.lammpstrj\[0\]: LAMMPS atom type 2 is not in"):
        read_structures(path, type_map="1=O")


def test_a_dump_cut_inside_its_last_frame_leaves_that_frame_out(tmp_path):
    """A run still writing: the last frame's header says 2 atoms and 1 follows. ASE
    builds a 1-atom frame from it; it must not be analysed as a structure."""
    path = tmp_path / "run.lammpstrj"
    _write_dump(path, "id type x y z", frames=3)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # the last atom line is missing
    with pytest.warns(UserWarning, match=r"last frame holds 1 of its 2 atoms .*left out"):
        frames = read_structures(path, type_map="1=O,2=Si")
    assert [len(f) for f in frames] == [2, 2]
    with pytest.warns(UserWarning, match="left out"):
        (last,) = read_structures(path, index=-1, type_map="1=O,2=Si")  # the last whole one
    assert len(last) == 2
    with pytest.warns(UserWarning, match="left out"):
        (first,) = read_structures(path, index=0, type_map="1=O,2=Si")  # one frame, alone
    assert len(first) == 2


@pytest.mark.parametrize("atom", [0, 1], ids=["inside-its-first-atom", "inside-its-last-atom"])
def test_a_dump_cut_inside_an_atom_line_leaves_that_frame_out(tmp_path, atom):
    """A copy cut mid-line: ASE refused the whole file at the broken line; the whole
    frames before it are read, and a cut last atom line does not count as an atom."""
    path = tmp_path / "run.lammpstrj"
    atoms = _write_dump(path, "id type x y z", frames=3)
    text = path.read_text()
    start = text.index("\n", text.rfind("ITEM: ATOMS")) + 1  # the last frame's atom lines
    for _ in range(atom):
        start = text.index("\n", start) + 1
    path.write_text(text[: start + 5])  # 5 characters into the atom line
    for index, count in ((":", 2), (-1, 1), ("::-1", 2)):
        with pytest.warns(UserWarning, match=r"last frame holds [01] of its 2 atoms .*left out"):
            frames = read_structures(path, index=index, type_map="1=O,2=Si")
        assert len(frames) == count
        for frame in frames:
            assert np.allclose(frame.positions, atoms.positions, atol=POSITION_TOL)
    with pytest.warns(UserWarning), pytest.raises(ReadError, match="frame 2 does not exist"):
        read_structures(path, index=2, type_map="1=O,2=Si")


def test_lammps_dump_element_column_wins(tmp_path):
    path = tmp_path / "run.lammpstrj"
    _write_dump(path, "id type element x y z", frames=1)
    for type_map in (None, "1=Si,2=O"):
        (frame,) = read_structures(path, type_map=type_map)
        assert frame.get_chemical_symbols() == ["O", "Si"]


def test_a_data_file_without_a_style_comment_takes_the_style_given(tmp_path, charge_data):
    bare = tmp_path / "bare.data"
    bare.write_text(charge_data.read_text().replace("Atoms # charge", "Atoms"))
    with pytest.raises(ReadError, match=r"names no style: give it, e.g. --atom-style charge"):
        read_structures(bare)  # 9 columns: atomic with image flags, or charge? ASE cannot tell
    (atoms,) = read_structures(bare, atom_style="charge")
    np.testing.assert_allclose(atoms.get_initial_charges(), [2.4, -1.2, -1.2, -1.2])


def test_a_corrupt_frame_is_named(tmp_path):
    path = tmp_path / "four.extxyz"
    write_structures(path, [bulk("Si", "diamond", a=5.431)] * 4)
    lines = path.read_text().splitlines()
    atom_line = 2 * (2 + 2) + 2  # frame 2's first atom (2-atom frames, 2 header lines)
    lines[atom_line] = lines[atom_line].replace(lines[atom_line].split()[1], "abc", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"four.extxyz\[2\]: cannot read: .*'abc'"):
        read_structures(path)


def test_a_corrupt_frame_of_a_text_dump_is_named(tmp_path):
    path = tmp_path / "run.lammpstrj"
    _write_dump(path, "id type x y z", frames=3)
    lines = path.read_text().splitlines()
    second = [k for k, line in enumerate(lines) if line == "ITEM: TIMESTEP"][1]
    lines[second + 9] += " abc"  # a stray column in frame 1's first atom
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"run.lammpstrj\[1\]: cannot read"):
        read_structures(path, type_map="1=O,2=Si")


def test_compressed_lammps_files_and_a_dump_named_like_data(tmp_path, charge_data):
    import gzip
    import shutil

    def gzipped(source, name):
        target = tmp_path / name
        with open(source, "rb") as fh, gzip.open(target, "wb") as gz:
            shutil.copyfileobj(fh, gz)
        return target

    (plain,) = read_structures(charge_data)
    (data,) = read_structures(gzipped(charge_data, "glass.data.gz"))
    assert data.get_chemical_symbols() == plain.get_chemical_symbols()  # Masses read
    np.testing.assert_allclose(data.positions, plain.positions)
    dump = tmp_path / "dump.lammps"  # a text dump with a data-file ending
    _write_dump(dump, "id type element x y z", frames=2)
    assert [f.get_chemical_symbols() for f in read_structures(dump)] == [["O", "Si"]] * 2
    (frame,) = read_structures(gzipped(dump, "run.lammpstrj.gz"), index=-1)
    assert frame.get_chemical_symbols() == ["O", "Si"]  # its element column, decompressed


def _lammps_dumps(folder, columns: str = "id type x y z vx vy vz", time: bool = True):
    """Binary and text dumps of the same two frames of a triclinic 2-type diamond cell,
    written by LAMMPS itself (the binary one with its column names, units and time)."""
    from amtoolkit.potentials._lammps import new_lammps

    binary, text = folder / "run.bin", folder / "run.lammpstrj"
    lmp = new_lammps()
    try:
        for command in (
            "units metal",
            "atom_style atomic",
            "lattice diamond 5.43",
            "region box prism 0 2 0 2 0 2 0.3 0.1 0.2",
            "create_box 2 box",
            "create_atoms 1 region box",
            "set type 1 type/fraction 2 0.25 7",
            "mass * 28.0855",
            "velocity all create 300 1",
            f"dump b all custom 1 {binary} {columns}",
            f"dump t all custom 1 {text} {columns}",
            f"dump_modify b sort id time {'yes' if time else 'no'}",
            "dump_modify t sort id",
            "run 0",
            "displace_atoms all random 0.1 0.1 0.1 2",
            "run 1",
        ):
            lmp.command(command)
    finally:
        lmp.close()
    return binary, text


@pytest.mark.parametrize("time", [True, False])
def test_lammps_binary_dump_reads_as_its_text_twin(tmp_path, time):
    binary, text = _lammps_dumps(tmp_path, time=time)
    frames = read_structures(binary, type_map="1=Si,2=Ge")  # the format found by its header
    twins = read_structures(text, type_map="1=Si,2=Ge")
    assert len(frames) == len(twins) == 2
    assert frames[0].cell.angles() != pytest.approx([90.0] * 3)  # triclinic
    for frame, twin in zip(frames, twins, strict=True):
        assert frame.get_chemical_symbols() == twin.get_chemical_symbols()
        assert sorted(set(frame.get_chemical_symbols())) == ["Ge", "Si"]
        assert np.allclose(frame.cell, twin.cell, atol=POSITION_TOL)
        assert np.allclose(frame.positions, twin.positions, atol=POSITION_TOL)
        assert np.allclose(frame.get_velocities(), twin.get_velocities(), rtol=1e-5)
    assert not np.allclose(frames[0].positions, frames[1].positions)
    with pytest.raises(ReadError, match=r"run.bin: a LAMMPS dump without an element column"):
        read_structures(binary)


def test_lammps_binary_dump_without_column_names_says_so(tmp_path):
    old = tmp_path / "old.bin"
    old.write_bytes(np.array([5], dtype=np.int64).tobytes() + bytes(200))  # timestep first
    with pytest.raises(ReadError, match=r"old.bin: this LAMMPS binary dump does not name its"):
        read_structures(old, format="lammps-dump-binary", type_map="1=Si")


def test_dm2_sio2_file(dm2_sio2_path):
    (atoms,) = read_structures(dm2_sio2_path)
    assert atoms.get_chemical_formula() == "O2000Si1000"
    si = atoms.numbers == 14
    np.testing.assert_allclose(atoms.get_initial_charges()[si], 2.4)
    density = atoms.get_masses().sum() / atoms.get_volume() * 1.66053906660
    assert 2.0 < density < 2.3  # README: 2.09-2.20 g/cm3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1=O,2=Si", {1: 8, 2: 14}),
        (" 2 = Si , 1=O ,", {1: 8, 2: 14}),
        ({1: "O", 2: 14}, {1: 8, 2: 14}),
        ("", None),
        (None, None),
    ],
)
def test_parse_type_map(text, expected):
    assert parse_type_map(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1O", "expected TYPE=ELEMENT"),
        ("a=O", "'a' is not an integer"),
        ("1=Qq", "'Qq' is not an element"),
        ("1=O,1=Si", "type 1 is given twice"),
        ("0=O", "types start at 1"),
        ("1=O=Si", "expected TYPE=ELEMENT"),
    ],
)
def test_parse_type_map_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_type_map(text)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.extxyz: no such file"):
        read_structures(tmp_path / "nothere.extxyz")


def test_garbage_file_is_one_line_read_error(tmp_path):
    path = tmp_path / "junk.xyz"
    path.write_text("this is\nnot a structure\n")
    with pytest.raises(ReadError, match=r"junk\.xyz: cannot read") as info:
        read_structures(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["empty.extxyz", "empty.data", "empty.lammpstrj"])
def test_empty_file_says_so(tmp_path, name):
    (tmp_path / name).write_text("")
    with pytest.raises(ReadError, match=rf"{name}: the file is empty"):
        read_structures(tmp_path / name)


def test_a_file_without_atoms_read_as_lammps_data_says_so(tmp_path):
    path = write_structures(tmp_path / "si.extxyz", bulk("Si", "diamond", a=5.431))
    with pytest.raises(ReadError, match=r"si.extxyz: not a LAMMPS data file \(no Atoms section\)"):
        read_structures(path, format="lammps-data")  # ASE failed on an unset local variable


def test_frame_past_either_end_is_named(tmp_path):
    frames = [bulk("Si", "diamond", a=a, cubic=True) for a in (5.43, 5.50)]
    path = write_structures(tmp_path / "two.extxyz", frames)
    with pytest.raises(ReadError, match=r"two.extxyz: frame 99 does not exist"):
        read_structures(path, index=99)
    for index in (-3, "-3"):  # ASE alone returns the first frame for these
        with pytest.raises(ReadError, match=r"two.extxyz: frame -3 does not exist \(2 frame"):
            read_structures(path, index=index)
    assert read_structures(path, index="-2")[0].cell[0, 0] == pytest.approx(5.43)
    assert read_structures(path, index=-1)[0].cell[0, 0] == pytest.approx(5.50)


def test_write_json_is_strict_and_atomic(tmp_path):
    path = write_json(tmp_path / "out.json", {"a": [1.0, float("nan")], "b": {"c": np.inf}})
    assert json.loads(path.read_text()) == {"a": [1.0, None], "b": {"c": None}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_examples_by_name():
    from amtoolkit import examples

    assert "a-si" in examples.names()
    assert examples.path("a-si").exists()
    (atoms,) = examples.load("a-si")
    assert len(atoms) == 216 and atoms.info["potential"] == "sw-si"
    with pytest.raises(ValueError, match="unknown example 'glass'.*a-si"):
        examples.path("glass")


def test_an_amtoolkit_dataset_reads_as_frames_with_its_properties(tmp_path):
    import h5py

    from amtoolkit.data import Dataset

    frames = [bulk("Si", "diamond", a=5.43 + 0.01 * k, cubic=True) for k in range(4)]
    for k, atoms in enumerate(frames):
        atoms.info["shear_modulus"] = 30.0 + k
    path = Dataset.from_atoms(frames).to_hdf5(tmp_path / "set.h5")
    read = read_structures(path, index="1::2")
    assert [a.info["shear_modulus"] for a in read] == [31.0, 33.0]
    np.testing.assert_allclose(read[1].cell.array, frames[3].cell.array)
    np.testing.assert_allclose(read[1].positions, frames[3].positions)
    assert frame_numbers("1::2", len(read), lambda: 4) == [1, 3]
    assert frame_numbers("-1", 1, lambda: 4) == [3]
    assert frame_numbers("::-3", 2, lambda: 4) == [3, 0]
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as fh:
        fh["x"] = np.zeros(3)
    with pytest.raises(ReadError, match=f"{other}: not an amtoolkit dataset"):
        read_structures(other)


@pytest.mark.parametrize("name", ["notes.txt", "passwd"])
def test_a_file_of_no_structure_format_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_text("root:x:0:0:root:/root:/bin/bash\nhello world\n")
    with pytest.raises(ReadError, match=f"{path}: cannot read: not a structure format"):
        read_structures(path)


def test_a_compressed_trajectory_reads_as_the_plain_one_through_a_temporary_copy(
    tmp_path, monkeypatch
):
    import gzip
    import tempfile

    frames = [bulk("Si", "diamond", a=5.431 + 0.01 * k) for k in range(5)]
    plain = write_structures(tmp_path / "run.extxyz", frames)
    packed = tmp_path / "run.extxyz.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for index in (":", -1, 2, "1::2"):
        got = read_structures(packed, index=index)
        want = read_structures(plain, index=index)
        assert [a.cell.cellpar()[0] for a in got] == [a.cell.cellpar()[0] for a in want]
    assert list((tmp_path / "tmp").iterdir()) == []  # the decompressed copy is gone


def test_an_extxyz_cut_inside_its_last_frame_leaves_that_frame_out(tmp_path):
    """A run writing extended XYZ as it goes (ASE MD): the whole frames are read."""
    path = tmp_path / "md.extxyz"
    write_structures(
        path, [bulk("Si", "diamond", a=5.431 + 0.01 * k, cubic=True) for k in range(3)]
    )
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    with pytest.warns(
        UserWarning, match=r"md.extxyz: the file ends inside frame 2 .*left out"
    ) as w:
        frames = read_structures(path)
    assert w[0].filename == __file__
    assert [round(f.cell[0, 0], 3) for f in frames] == [5.431, 5.441]
    with pytest.warns(UserWarning, match="left out"):
        (last,) = read_structures(path, index=-1)
    assert last.cell[0, 0] == pytest.approx(5.441)


def test_a_short_dump_frame_inside_the_file_is_named(tmp_path):
    path = tmp_path / "restarted.lammpstrj"
    _write_dump(path, "id type x y z", frames=3)
    lines = path.read_text().splitlines()
    del lines[11 + 9]  # the first atom line of frame 1 (frames of 11 lines)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"restarted.lammpstrj\[1\]: the frame holds 1 of the 2"):
        read_structures(path, type_map="1=O,2=Si")
    whole = tmp_path / "whole.lammpstrj"
    _write_dump(whole, "id type x y z", frames=3)
    with pytest.raises(ReadError, match=r"frame 7 does not exist \(3 frame\(s\)\)"):
        read_structures(whole, index=7, type_map="1=O,2=Si")


def test_typos_in_a_format_or_an_element_are_answered_with_the_likely_name(tmp_path):
    path = tmp_path / "run.lammpstrj"
    _write_dump(path, "id type x y z", frames=1)
    with pytest.raises(ReadError, match=r"unknown format 'extxy' \(did you mean extxyz\?\)"):
        read_structures(path, format="extxy")
    with pytest.raises(ValueError, match=r"'si' is not an element symbol \(did you mean Si\?\)"):
        read_structures(path, type_map="1=O,2=si")


def test_a_bad_atom_of_a_data_file_is_named_with_its_lammps_id(charge_data):
    from amtoolkit.analysis._structures import check_structure
    from amtoolkit.errors import StructureError

    (atoms,) = read_structures(charge_data)
    atoms.arrays["id"][1] = 2  # ids need not follow the order of the atoms
    atoms.positions[1, 0] = np.nan
    with pytest.raises(StructureError, match=r"on atom 1 \(id 2\)"):
        check_structure(atoms)


def test_an_output_in_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    import os

    from amtoolkit.io import check_writable

    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode),
    )  # as root, a chmod'ed folder would still be writable
    with pytest.raises(
        PermissionError, match=rf"cannot write {tmp_path}/x.json: folder .* not writable"
    ):
        check_writable(tmp_path / "x.json")


def test_an_unknown_element_symbol_is_named_as_one(tmp_path):
    from amtoolkit.io import read_structures

    path = tmp_path / "xx.extxyz"
    lines = [
        "2",
        'Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"',
        "Si 0 0 0",
        "Xx 1 1 1",
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"xx.extxyz: cannot read: unknown element symbol 'Xx'"):
        read_structures(path)
