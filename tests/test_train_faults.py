"""Faults a run meets outside the happy path: torn scalar logs after a power loss, temporary
files of interrupted saves, checkpoints damaged or tampered with after they were written, and
where a resumed copy of a run writes."""

from __future__ import annotations

import io
import math
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from train_helpers import one_thread, read_scalars, restore_threads, toy_config, usage_error

from lipreg.train import checkpoint
from lipreg.train.checkpoint import CheckpointError
from lipreg.train.cli import main, parse_command
from lipreg.train.integrity import digest
from lipreg.train.loop import Trainer
from lipreg.train.runner import Runner
from lipreg.train.scalars import ScalarLog

setup_module, teardown_module = one_thread, restore_threads

TINY = ["--data", "8gaussians", "--data-size", "64", "--width", "8"]
TINY += ["--batch-size", "16", "--log-every", "1"]
QUIET = ["--no-progress", "--no-tensorboard"]


# --- scalars.jsonl after a power loss ----------------------------------------------------


def _log_with(tmp_path: Path, tail: bytes) -> Path:
    path = tmp_path / "scalars.jsonl"
    path.write_bytes(b'{"step": 1, "a": 1.0}\n{"step": 2, "a": 2.0}\n' + tail)
    return path


@pytest.mark.parametrize(
    "tail",
    [
        b'{"step": 3, "a": 3',  # the last line torn mid-write
        b"\x00" * 64,  # the file extended by zeros (the data never reached the disk)
        b'{"step": 3, "a": 3.0}\n\x00\x00\x00\x00',
        b'{"step": 3, "a"\x00\x00\x00\n\x00\x00',
        b"\xff\xfe garbage",  # not even UTF-8
    ],
    ids=["torn", "zeros", "line-then-zeros", "torn-then-zeros", "bytes"],
)
def test_a_torn_tail_of_the_scalar_log_is_repaired_on_resume(tmp_path: Path, tail: bytes) -> None:
    path = _log_with(tmp_path, tail)
    log = ScalarLog(tmp_path, tensorboard=False, resume_step=2)
    log.write(3, {"a": 30.0})
    log.close()
    assert read_scalars(tmp_path) == [
        {"step": 1, "a": 1.0},
        {"step": 2, "a": 2.0},
        {"step": 3, "a": 30.0},
    ]
    assert any("repaired" in n and str(path) in n for n in log.notes)


def test_resume_repairs_the_log_of_a_run_cut_by_a_power_loss(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([*TINY, *QUIET, "--steps", "2", "--out", str(out)]) == 0
    with (out / "scalars.jsonl").open("ab") as f:
        f.write(b'{"step": 3, "loss/critic": 0.1' + b"\x00" * 100)
    assert main(["--resume", str(out), "--steps", "3"]) == 0
    steps = [r["step"] for r in read_scalars(out) if "loss/critic" in r]
    assert steps == [1, 2, 3]


# --- temporary files of checkpoint saves -------------------------------------------------


def test_temporary_files_of_interrupted_saves_are_removed(tmp_path: Path) -> None:
    # what `kill -9` during torch.save leaves behind
    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".checkpoint.pt.x.tmp"]
    for path in stale:
        path.write_bytes(b"PK\x03\x04half")
    other = tmp_path / ".other.pt.abc.tmp"  # another file's temporary is not ours to remove
    other.write_bytes(b"")
    checkpoint.save(tmp_path / "checkpoint.pt", {"step": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc.tmp", "checkpoint.pt"]


# --- integrity of the payload ------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "run"
    Runner(Trainer(toy_config(out, steps=2))).run()
    return out


def _flip_tensor_byte(data: bytes, record: str, offset: int = 5) -> bytes:
    """``data`` (a torch.save zip) with one byte of the stored tensor ``record`` inverted,
    the archive otherwise intact (zip entries are stored uncompressed)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(f"/data/{record}"))
    # the local header's name and extra-field lengths (torch pads records to alignment)
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    damaged = bytearray(data)
    damaged[start + offset] ^= 0xFF
    return bytes(damaged)


def test_a_flipped_byte_in_tensor_data_is_detected(saved_run: Path, tmp_path: Path) -> None:
    data = (saved_run / "checkpoint.pt").read_bytes()
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(_flip_tensor_byte(data, "0"))
    # the damage is invisible to torch: the file loads, with other numbers
    damaged = torch.load(path, weights_only=True)
    assert digest(damaged) != digest(torch.load(saved_run / "checkpoint.pt", weights_only=True))
    with pytest.raises(CheckpointError, match="integrity check") as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)


def _tampered(saved_run: Path, tmp_path: Path, **changes: object) -> Path:
    state = torch.load(saved_run / "checkpoint.pt", weights_only=True)
    state.pop("format")
    state.pop("checksum", None)
    for key, value in changes.items():
        state[key] = value
    return checkpoint.save(tmp_path / "checkpoint.pt", state)  # a valid checksum


@pytest.mark.parametrize(
    ("step", "message"),
    [(-1, "step"), ("3", "step"), (2.0, "step"), (True, "step"), (10**6, "beyond")],
    ids=["negative", "string", "float", "bool", "beyond-steps"],
)
def test_tampered_steps_are_refused(
    saved_run: Path, tmp_path: Path, step: object, message: str
) -> None:
    path = _tampered(saved_run, tmp_path, step=step)
    with pytest.raises(CheckpointError, match=message) as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)


def test_a_negative_step_keeps_the_scalar_history(
    saved_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copy"
    out.mkdir()
    (out / "scalars.jsonl").write_bytes((saved_run / "scalars.jsonl").read_bytes())
    before = (out / "scalars.jsonl").read_bytes()
    _tampered(saved_run, out, step=-5)
    err = usage_error(capsys, lambda: main(["--resume", str(out), "--out", str(out)]))
    assert "step" in err and "Traceback" not in err
    assert (out / "scalars.jsonl").read_bytes() == before


def test_resuming_beyond_the_given_steps_is_refused(
    saved_run: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = usage_error(
        capsys, lambda: main(["--resume", str(saved_run), "--steps", "1", "--out", str(tmp_path)])
    )
    assert "--steps 1" in err and "step 2" in err


@pytest.mark.parametrize(
    ("entry", "name"),
    [("critic", "net.0.weight"), ("penalty", "calibration.means"), ("opt_d", None)],
)
def test_non_finite_values_in_a_checkpoint_are_refused_naming_it(
    saved_run: Path, tmp_path: Path, entry: str, name: str | None
) -> None:
    state = torch.load(saved_run / "checkpoint.pt", weights_only=True)
    if name is None:  # Adam's first moment of the critic's first parameter
        state[entry]["state"][0]["exp_avg"].view(-1)[0] = math.inf
    else:
        state[entry][name].view(-1)[0] = math.nan
    path = _tampered(saved_run, tmp_path, **{entry: state[entry]})
    with pytest.raises(CheckpointError, match="NaN or infinite") as info:
        checkpoint.load(path)
    assert str(path) in str(info.value) and entry in str(info.value)


@pytest.mark.parametrize(
    "rng",
    [
        [{"python": [3, [1, 2], None], "torch": torch.zeros(5, dtype=torch.uint8), "cuda": []}],
        [{"python": "seed", "torch": torch.get_rng_state(), "cuda": []}],
        [{"torch": torch.get_rng_state()}],
        "rng",
        [],
    ],
    ids=["wrong-sizes", "python-not-a-state", "missing-keys", "not-a-list", "empty"],
)
def test_a_corrupt_random_state_is_refused_before_anything_changes(
    saved_run: Path, tmp_path: Path, rng: object, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _tampered(saved_run, tmp_path, rng=rng)
    before = torch.get_rng_state()
    err = usage_error(capsys, lambda: main(["--resume", str(path), "--out", str(tmp_path)]))
    assert "random" in err and str(path) in err and "Traceback" not in err
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    "changes",
    [{"config": "steps=2"}, {"config": {"steps": "two"}}, {"generator": [1, 2]}],
    ids=["config-not-a-dict", "config-value", "weights-not-a-dict"],
)
def test_other_damaged_entries_are_usage_errors(
    saved_run: Path, tmp_path: Path, changes: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    if isinstance(changes.get("config"), dict):
        config = torch.load(saved_run / "checkpoint.pt", weights_only=True)["config"]
        changes = {"config": {**config, **changes["config"]}}  # type: ignore[dict-item]
    path = _tampered(saved_run, tmp_path, **changes)
    err = usage_error(capsys, lambda: main(["--resume", str(path), "--out", str(tmp_path)]))
    assert "error:" in err and "Traceback" not in err


# --- where a resumed run writes ----------------------------------------------------------


def test_a_resumed_copy_writes_where_its_checkpoint_is(saved_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "checkpoint.pt").write_bytes((saved_run / "checkpoint.pt").read_bytes())
    original = {p.name: p.stat().st_mtime_ns for p in saved_run.iterdir()}
    for target in (copy, copy / "checkpoint.pt"):
        assert parse_command(["--resume", str(target)]).config.out == str(copy)
    assert main(["--resume", str(copy), "--steps", "3", *QUIET]) == 0
    assert checkpoint.load(copy)["step"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in saved_run.iterdir()} == original
    # an explicit --out still wins
    elsewhere = tmp_path / "elsewhere"
    assert parse_command(["--resume", str(copy), "--out", str(elsewhere)]).config.out == str(
        elsewhere
    )


def test_checkpoints_from_before_the_checksum_still_load(saved_run: Path, tmp_path: Path) -> None:
    state = torch.load(saved_run / "checkpoint.pt", weights_only=True)
    checksum = state.pop("checksum")
    older = tmp_path / "older.pt"
    torch.save({**state, "format": "lipreg.train/1"}, older)
    assert checkpoint.load(older)["step"] == 2
    # a checksum in a file claiming the older format: its format byte was changed
    torch.save({**state, "format": "lipreg.train/1", "checksum": checksum}, older)
    with pytest.raises(CheckpointError, match="integrity check"):
        checkpoint.load(older)
