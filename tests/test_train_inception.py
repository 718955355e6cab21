"""IS/FID/KID by default: torch-fidelity's standard Inception weights downloaded once into the
cache with their SHA-256 checked (served here on 127.0.0.1), torch.hub's copy reused, a
local file for offline machines, ``--no-inception``, and one line (the run goes on) when
torch-fidelity is missing. A weights file is verified at start-up, before anything is
written, and never unpickled: its SHA-256 must be the published one, or, with
``--inception-weights-unverified``, it must load as plain tensors with Inception's names and
shapes and give features that depend on the image. torch-fidelity itself is a stand-in (the
``fidelity`` fixture) that loads the weights as torch-fidelity does, with a full unpickling."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import image_config, one_thread, read_scalars, restore_threads, usage_error

from conftest import FileServer, fidelity_state
from lipreg.train.cli import main, parse_command
from lipreg.train.data import Remote, cache_dir
from lipreg.train.evaluate import Evaluator
from lipreg.train.loop import Trainer
from lipreg.train.metrics import (
    INCEPTION_WEIGHTS,
    fetch_inception_weights,
    prepare_inception,
    weights,
)
from lipreg.train.metrics.inception import WeightsError

setup_module, teardown_module = one_thread, restore_threads

NAME = INCEPTION_WEIGHTS.filename


def saved(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


BODY = saved(fidelity_state())  # the stand-in's "published" weights file
METRICS = {"metric/is", "metric/is_std", "metric/fid", "metric/kid", "metric/kid_std"}
# the metrics of every image evaluation
QUICK = {
    "metric/swd",
    "metric/spectral_distance",
    "metric/spectral_hf_distance",
    "metric/spectral_hf_excess",
}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torch.hub's checkpoint directory, moved into the test's directory (``TORCH_HOME``)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def serve_weights(file_server: FileServer, **kwargs: Any) -> Remote:
    return file_server.remote(NAME, BODY, algorithm="sha256", **kwargs)


@pytest.fixture
def served(file_server: FileServer, hub: Path, monkeypatch: pytest.MonkeyPatch) -> FileServer:
    """The server, with the standard weights served on 127.0.0.1 in place of the real URL."""
    monkeypatch.setattr(weights, "INCEPTION_WEIGHTS", serve_weights(file_server))
    return file_server


def evaluator(out: Path, **overrides: Any) -> tuple[Trainer, Evaluator]:
    trainer = Trainer(image_config(out, eval_samples=12, **overrides))
    return trainer, trainer.evaluator(out)


def test_the_standard_weights_are_torch_fidelitys_with_a_consistent_sha256() -> None:
    assert INCEPTION_WEIGHTS.url == (
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth"
    )
    assert INCEPTION_WEIGHTS.algorithm == "sha256"
    # torch.hub's convention: the name ends with the first hex digits of the file's SHA-256
    assert NAME.removesuffix(".pth").rsplit("-", 1)[1] == INCEPTION_WEIGHTS.digest[:8]


def test_weights_are_downloaded_once_into_the_cache(file_server: FileServer, hub: Path) -> None:
    remote = serve_weights(file_server)
    path = fetch_inception_weights(remote=remote)
    assert path == cache_dir() / NAME and path.read_bytes() == BODY
    assert fetch_inception_weights(remote=remote) == path
    assert file_server.requests == [f"/{NAME}"]
    assert not hub.exists()


def test_torch_hubs_copy_is_used_only_when_it_verifies(file_server: FileServer, hub: Path) -> None:
    remote = serve_weights(file_server)
    hub.mkdir(parents=True)
    (hub / NAME).write_bytes(BODY)
    assert fetch_inception_weights(remote=remote) == hub / NAME
    assert file_server.requests == []
    (hub / NAME).write_bytes(b"damaged")
    assert fetch_inception_weights(remote=remote) == cache_dir() / NAME
    assert file_server.requests == [f"/{NAME}"] and (hub / NAME).read_bytes() == b"damaged"


def test_prepare_inception_says_what_it_uses_or_why_not(
    tmp_path: Path, file_server: FileServer, hub: Path, fidelity: dict[str, Any]
) -> None:
    local = tmp_path / "local.pth"
    local.write_bytes(b"mine")
    assert prepare_inception(local) == (local, f"IS/FID/KID with the Inception weights {local}")
    path, note = prepare_inception(tmp_path / "absent.pth")
    assert path is None and "does not exist" in note
    # the download fails: one line with the offline fixes, the cache stays empty
    wrong = serve_weights(file_server, digest="0" * 64)
    path, note = prepare_inception(remote=wrong)
    assert path is None and "\n" not in note and note.startswith("IS/FID/KID skipped: ")
    assert "--inception-weights PATH" in note and "--no-inception" in note
    assert not (cache_dir() / NAME).exists() and not list(cache_dir().iterdir())
    unreachable = Remote("http://127.0.0.1:9/w.pth", NAME, "sha256", "0" * 64)
    path, note = prepare_inception(remote=unreachable)
    assert path is None and "cannot download http://127.0.0.1:9/w.pth" in note
    path, note = prepare_inception(remote=serve_weights(file_server))
    assert path == cache_dir() / NAME
    assert note == f"IS/FID/KID with torch-fidelity's Inception weights {path}"


def test_every_evaluation_has_is_fid_kid_by_default(
    tmp_path: Path, served: FileServer, fidelity: dict[str, Any]
) -> None:
    trainer, ev = evaluator(tmp_path / "run")
    assert trainer.config.inception  # the default
    assert ev.weights == cache_dir() / NAME
    assert ev.note.startswith("IS/FID/KID with torch-fidelity's Inception weights")
    assert set(ev.evaluate(0, trainer.sampler)) == METRICS | QUICK
    assert torch.equal(fidelity["state"]["proj"], fidelity_state()["proj"])
    evaluator(tmp_path / "run")  # a second run: the cache, no download
    assert served.requests == [f"/{NAME}"]


def test_no_inception_and_offline_weights(
    tmp_path: Path, served: FileServer, fidelity: dict[str, Any]
) -> None:
    trainer, ev = evaluator(tmp_path / "run", inception=False)
    assert ev.weights is None and ev.note == ""
    assert set(ev.evaluate(0, trainer.sampler)) == QUICK
    assert "path" not in fidelity  # never built
    local = tmp_path / "local.pth"
    local.write_bytes(BODY)
    trainer, ev = evaluator(tmp_path / "run", inception_weights=str(local))
    assert set(ev.evaluate(0, trainer.sampler)) == METRICS | QUICK
    assert torch.equal(fidelity["state"]["proj"], fidelity_state()["proj"])
    assert served.requests == []  # nothing downloaded by either


def test_the_options_reach_the_configuration() -> None:
    config = parse_command(["--no-inception", "--download"]).config
    assert config.inception is False and config.download is True
    config = parse_command([]).config
    assert config.inception is True and config.download is False


def test_without_torch_fidelity_one_line_says_so_and_the_run_goes_on(
    tmp_path: Path,
    served: FileServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as if not installed
    argv = [
        "--data", "patches", "--data-size", "64", "--image-size", "8", "--model", "dcgan",
        "--width", "4", "--batch-size", "8", "--gen-batch-size", "8", "--steps", "2",
        "--eval-every", "1", "--eval-samples", "16", "--checkpoint-every", "0",
        "--no-progress", "--no-tensorboard", "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if "torch-fidelity" in line]
    assert lines == [
        "lipreg train: IS/FID/KID skipped: torch-fidelity is not installed; pip install "
        "torch-fidelity (with a torchvision built for your torch) to get them, or pass "
        "--no-inception"
    ]
    metrics = [row for row in read_scalars(tmp_path / "run") if "metric/swd" in row]
    assert [row["step"] for row in metrics] == [0, 1, 2]
    assert not any(METRICS & set(row) for row in metrics)
    assert served.requests == [] and (tmp_path / "run" / "checkpoint.pt").is_file()


# --------------------------------------------------------------------------------------
# weights files are verified at start-up and never unpickled


class RunsAShellCommand:
    """Unpickling it runs ``touch MARKER``, as a hostile weights file would run anything."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A weights file that runs a shell command when unpickled, and the file it would create."""
    marker = tmp_path / "the-pickle-ran"
    path = tmp_path / "hostile.pth"
    path.write_bytes(saved({"proj": RunsAShellCommand(marker)}))  # type: ignore[dict-item]
    return path, marker


TRAIN = [
    "--data", "patches", "--data-size", "64", "--image-size", "8", "--model", "dcgan",
    "--width", "4", "--batch-size", "8", "--gen-batch-size", "8", "--eval-every", "1",
    "--eval-samples", "16", "--checkpoint-every", "0", "--no-progress", "--no-tensorboard",
]  # fmt: skip


def refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The last line of what ``main(argv)`` wrote when it exited with code 2."""
    err = usage_error(capsys, lambda: main(argv)).strip().splitlines()
    return err[-1]


def test_a_file_that_is_not_the_published_one_is_refused_before_anything_is_written(
    tmp_path: Path,
    served: FileServer,
    fidelity: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A pickle that runs a shell command, random bytes, and real tensors of other weights:
    each is refused at start-up with the published digest, and nothing unpickles it."""
    evil, marker = hostile(tmp_path)
    random_bytes = tmp_path / "random.pth"
    random_bytes.write_bytes(os.urandom(4096))
    other = tmp_path / "other.pth"
    other.write_bytes(saved({"proj": torch.ones(192, 16)}))
    digest = weights.INCEPTION_WEIGHTS.digest
    for path in (evil, random_bytes, other):
        out = tmp_path / f"run-{path.stem}"
        line = refusal(capsys, [*TRAIN, "--out", str(out), "--inception-weights", str(path)])
        found = hashlib.sha256(path.read_bytes()).hexdigest()
        assert line.startswith("lipreg train: error: --inception-weights ")
        assert f"SHA-256 {found}" in line and f"published {digest}" in line
        assert "--inception-weights-unverified" in line
        assert not out.exists()
    assert not marker.exists() and "path" not in fidelity  # never unpickled, never built


def test_the_published_file_is_accepted_and_checked_again_on_resume(
    tmp_path: Path,
    served: FileServer,
    fidelity: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = tmp_path / "local.pth"
    local.write_bytes(BODY)
    out = tmp_path / "run"
    assert main([*TRAIN, "--steps", "1", "--out", str(out), "--inception-weights", str(local)]) == 0
    assert torch.equal(fidelity["state"]["proj"], fidelity_state()["proj"])
    assert all(set(row) >= METRICS for row in read_scalars(out) if "metric/swd" in row)
    assert not isinstance(fidelity["path"], (str, Path))  # tensors handed over, not the file
    assert served.requests == []
    # resuming: the saved path, now a hostile file, or a hostile file given again, is refused
    # before any step
    checkpoint = (out / "checkpoint.pt").read_bytes()
    rows = (out / "scalars.jsonl").read_text()
    evil, marker = hostile(tmp_path)
    local.write_bytes(evil.read_bytes())
    for extra in ([], ["--inception-weights", str(evil)]):
        line = refusal(capsys, ["--resume", str(out), "--steps", "3", *extra])
        assert "SHA-256" in line and weights.INCEPTION_WEIGHTS.digest in line
    assert (out / "checkpoint.pt").read_bytes() == checkpoint
    assert (out / "scalars.jsonl").read_text() == rows
    assert not marker.exists()


def test_unverified_weights_load_as_tensors_only(
    tmp_path: Path,
    served: FileServer,
    fidelity: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the opt-out, a file is loaded with weights_only=True and must have the network's
    parameter names and shapes and give features that depend on the image."""
    evil, marker = hostile(tmp_path)
    cases = {
        "code": (evil, "cannot be loaded as plain tensors"),
        "names": (saved({"projection": torch.randn(192, 16)}), "missing proj"),
        "extra": (saved({**fidelity_state(), "head": torch.ones(2)}), "unexpected head"),
        "shapes": (saved({"proj": torch.randn(16, 192)}), "proj has shape [16, 192]"),
        "constant": (saved({"proj": torch.zeros(192, 16)}), "the same features for every"),
        "not a dict": (saved([torch.ones(2)]), "not a state dict"),
    }
    for name, (body, expected) in cases.items():
        path = body if isinstance(body, Path) else tmp_path / f"{name}.pth"
        if not isinstance(body, Path):
            path.write_bytes(body)
        out = tmp_path / f"run-{name}"
        argv = [*TRAIN, "--out", str(out), "--inception-weights", str(path)]
        line = refusal(capsys, [*argv, "--inception-weights-unverified"])
        assert line.startswith(f"lipreg train: error: --inception-weights {path}: "), name
        assert expected in line, (name, line)
        assert not out.exists()
    assert not marker.exists()
    # other weights with the right names and shapes: accepted, and they are what is used
    mine = {"proj": torch.randn(192, 16, generator=torch.Generator().manual_seed(7))}
    path = tmp_path / "mine.pth"
    path.write_bytes(saved(mine))
    out = tmp_path / "run"
    argv = [*TRAIN, "--steps", "1", "--out", str(out), "--inception-weights", str(path)]
    assert main([*argv, "--inception-weights-unverified"]) == 0
    assert torch.equal(fidelity["state"]["proj"], mine["proj"])
    assert all(set(row) >= METRICS for row in read_scalars(out) if "metric/swd" in row)


def test_the_opt_out_needs_a_weights_file(
    tmp_path: Path, served: FileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(
        capsys, [*TRAIN, "--out", str(tmp_path / "run"), "--inception-weights-unverified"]
    )
    assert "--inception-weights-unverified" in line and "--inception-weights PATH" in line
    assert not (tmp_path / "run").exists()


def test_an_evaluation_never_unpickles_the_file(
    tmp_path: Path, served: FileServer, fidelity: dict[str, Any]
) -> None:
    """A file replaced after the start-up check is still only read as tensors."""
    local = tmp_path / "local.pth"
    local.write_bytes(BODY)
    trainer, ev = evaluator(tmp_path / "run", inception_weights=str(local))
    evil, marker = hostile(tmp_path)
    local.write_bytes(evil.read_bytes())
    with pytest.raises(WeightsError) as info:
        ev.evaluate(0, trainer.sampler)
    assert "cannot be loaded as plain tensors" in str(info.value) and not marker.exists()


def test_a_mirror_of_the_weights_is_set_by_the_environment(
    file_server: FileServer,
    hub: Path,
    monkeypatch: pytest.MonkeyPatch,
    fidelity: dict[str, Any],
) -> None:
    """LIPREG_INCEPTION_URL moves the URL only: the file must still be the published one."""
    mirror = serve_weights(file_server)
    port = file_server.httpd.server_address[1]
    official = dataclasses.replace(
        mirror, url=f"http://127.0.0.1:{port}/gone.pth", url_env="LIPREG_INCEPTION_URL"
    )
    monkeypatch.setattr(weights, "INCEPTION_WEIGHTS", official)
    monkeypatch.setenv("LIPREG_INCEPTION_URL", mirror.url)
    assert fetch_inception_weights().read_bytes() == BODY
    assert file_server.requests == [f"/{NAME}"]
    (cache_dir() / NAME).unlink()
    monkeypatch.setenv("LIPREG_INCEPTION_URL", "not a url")
    path, note = prepare_inception()
    assert path is None and "LIPREG_INCEPTION_URL='not a url' is not a URL" in note
    assert file_server.requests == [f"/{NAME}"]
