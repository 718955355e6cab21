"""IS/FID/KID by default: torch-fidelity's standard Inception weights downloaded once into the
cache with their SHA-256 checked (served here on 127.0.0.1), torch.hub's copy reused, a
local file for offline machines, ``--no-inception``, and one line (the run goes on) when
torch-fidelity is missing. torch-fidelity itself is a stand-in (the ``fidelity`` fixture)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from train_helpers import image_config, one_thread, read_scalars, restore_threads

from conftest import FileServer
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

setup_module, teardown_module = one_thread, restore_threads

NAME = INCEPTION_WEIGHTS.filename
BODY = b"stand-in inception weights" * 100
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
    assert fidelity["path"] == str(cache_dir() / NAME)
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
    local.write_bytes(b"mine")
    trainer, ev = evaluator(tmp_path / "run", inception_weights=str(local))
    assert set(ev.evaluate(0, trainer.sampler)) == METRICS | QUICK
    assert fidelity["path"] == str(local)
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
