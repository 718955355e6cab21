"""lipreg.integrations.stylegan.BanachLoss against a stand-in of the StyleGAN hosts' protocol.

The stand-in (tests/standins/) has tiny networks with the hosts' signatures, a reference
StyleGAN2 loss written from the paper, and the hosts' phase schedule. With norm "l2" and
penalty "r1" the adapter must reproduce the reference exactly (same seeds, same inputs).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import http.server
import importlib
import pickle
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from conftest import host_without_pkg_resources
from lipreg import BanachGP, input_gradient
from lipreg.integrations.stylegan import ATTRIBUTE, BanachLoss

sys.path.insert(0, str(Path(__file__).parent / "standins"))
host = importlib.import_module("stylegan_host")
training_stats = importlib.import_module("torch_utils.training_stats")
conv2d_gradfix = importlib.import_module("torch_utils.ops.conv2d_gradfix")
misc = importlib.import_module("torch_utils.misc")
dnnlib = importlib.import_module("dnnlib")
dnnlib_util = importlib.import_module("dnnlib.util")

B = 4


def networks(protocol: str, augment: bool = True, c_dim: int = 0) -> dict[str, Any]:
    torch.manual_seed(1)
    G, D = host.Generator(c_dim=c_dim), host.Discriminator(c_dim=c_dim)
    aug = host.AugmentPipe(p=0.6) if augment else None
    if protocol == "ada":
        return {"G_mapping": G.mapping, "G_synthesis": G.synthesis, "D": D, "augment_pipe": aug}
    return {"G": G, "D": D, "augment_pipe": aug}


def host_kwargs(protocol: str) -> dict[str, Any]:
    common = {"r1_gamma": 3.0, "style_mixing_prob": 0.9, "pl_weight": 2.0, "pl_decay": 0.05}
    if protocol == "sg3":
        return {**common, "blur_init_sigma": 1.0, "blur_fade_kimg": 0.1}
    return common


NETWORKS = ("G", "G_mapping", "G_synthesis", "D")


def modules(nets: dict[str, Any]) -> list[nn.Module]:
    return [m for k, m in nets.items() if k in NETWORKS]


def gradients(m: nn.Module) -> list[torch.Tensor]:
    """``m``'s parameter gradients, zeros where a parameter has none."""
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in m.parameters()]


def state(nets: dict[str, Any], loss: Any) -> dict[str, list[torch.Tensor]]:
    """Every network's gradients and buffers (the penalty's own buffers excluded), and the
    loss's running path-length mean."""
    out = {}
    for k, m in nets.items():
        if k in NETWORKS:
            out[f"{k} gradients"] = gradients(m)
            out[f"{k} buffers"] = [
                b.clone() for n, b in m.named_buffers() if not n.startswith(ATTRIBUTE)
            ]
    out["pl_mean"] = [loss.pl_mean.clone()]
    return out


def call(loss: Any, protocol: str, phase: str, batch: dict[str, torch.Tensor], gain: float) -> None:
    extra = {"sync": True} if protocol == "ada" else {"cur_nimg": 40}
    loss.accumulate_gradients(phase=phase, **batch, gain=gain, **extra)


def run(
    loss_factory: Any, protocol: str, phases: list[str], c_dim: int = 0, n: int = B
) -> tuple[list[dict[str, list[torch.Tensor]]], dict[str, Any]]:
    nets = networks(protocol, c_dim=c_dim)
    loss = loss_factory(nets)
    torch.manual_seed(7)
    real = torch.randn(n, 3, 8, 8)
    real_c, gen_c = (torch.eye(max(c_dim, 1))[torch.randint(0, max(c_dim, 1), (n,))][:, :c_dim]
                     for _ in range(2))  # fmt: skip
    batch = {"real_img": real, "real_c": real_c, "gen_z": torch.randn(n, 6), "gen_c": gen_c}
    training_stats.clear()
    results = []
    torch.manual_seed(11)
    for phase in phases:
        for m in modules(nets):
            m.zero_grad(set_to_none=True)
        call(loss, protocol, phase, batch, gain=4.0 if phase.endswith("reg") else 1.0)
        results.append(state(nets, loss))
    # every reported value, in order: the host's statistics are per sample, so num and std
    # in its stats.jsonl depend on how many values each report holds
    reports = {k: torch.cat(v) for k, v in training_stats.reports.items()}
    return results, reports


PHASE_LISTS = [["Gmain", "Greg", "Dmain", "Dreg"], ["Gboth", "Dboth"]]


@pytest.mark.parametrize("protocol", ["ada", "sg3"])
@pytest.mark.parametrize("phases", PHASE_LISTS)
@pytest.mark.parametrize(("c_dim", "n"), [(0, B), (3, B), (0, 12)])
def test_l2_r1_equals_host_loss(protocol: str, phases: list[str], c_dim: int, n: int) -> None:
    """Bit for bit, also for a batch that is not a power of two (where a mean taken before
    adding R1 to the per-sample loss would round differently from the hosts)."""
    kw = host_kwargs(protocol)
    ours, ours_stats = run(lambda m: BanachLoss("cpu", **m, **kw), protocol, phases, c_dim, n)
    ref, ref_stats = run(
        lambda m: host.ReferenceLoss(protocol, "cpu", **m, **kw), protocol, phases, c_dim, n
    )
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    # the reference's statistics are reported under the same names, value for value
    assert set(ref_stats) <= set(ours_stats)
    ours_named = {k: ours_stats[k] for k in ref_stats}
    torch.testing.assert_close(ours_named, ref_stats, rtol=0, atol=0)
    assert ours_named["Loss/r1_penalty"].numel() == n and ours_named["Loss/D/reg"].numel() == n
    # the last phase (Dreg or Dboth) reached the critic
    assert any(g.abs().sum() > 0 for g in ours[-1]["D gradients"])


@pytest.mark.parametrize("protocol", ["ada", "sg3"])
def test_training_loop_matches_host(protocol: str) -> None:
    """Three steps of the hosts' schedule (rounds, sync, lazy phases with gain = interval)."""
    params = []
    for make in (BanachLoss, lambda *a, **k: host.ReferenceLoss(protocol, *a, **k)):
        nets = networks(protocol)
        loss = make("cpu", **nets, **host_kwargs(protocol))
        G = nets.get("G") or nn.ModuleDict({"m": nets["G_mapping"], "s": nets["G_synthesis"]})
        G.z_dim = 6
        torch.manual_seed(3)
        real = torch.randn(2 * B, 3, 8, 8)
        host.train(loss, protocol, G, nets["D"], real, steps=3, batch_gpu=B, g_reg_interval=2,
                   d_reg_interval=2)  # fmt: skip
        params.append([t for m in modules(nets) for t in m.parameters()])
    torch.testing.assert_close(params[0], params[1], rtol=0, atol=0)  # bit for bit


def test_sync_and_no_weight_gradient_contexts() -> None:
    nets = networks("ada")
    loss = BanachLoss("cpu", **nets, **host_kwargs("ada"))
    batch = {"real_img": torch.randn(B, 3, 8, 8), "real_c": torch.zeros(B, 0),
             "gen_z": torch.randn(B, 6), "gen_c": torch.zeros(B, 0)}  # fmt: skip
    misc.sync_log.clear()
    before = conv2d_gradfix.entered
    loss.accumulate_gradients("Dreg", *batch.values(), True, 16)  # ADA's positional order
    assert misc.sync_log == [("Discriminator", True)]
    assert conv2d_gradfix.entered == before + 1
    misc.sync_log.clear()
    loss.accumulate_gradients("Dmain", *batch.values(), False, 1)
    assert ("Discriminator", True) not in misc.sync_log


def test_gp_wasserstein_losses_and_critic_gradients() -> None:
    nets = networks("sg3", augment=False)
    loss = BanachLoss("cpu", **nets, penalty="gp", norm="sobolev:s=-1", lam=5.0, gamma="auto")
    D = nets["D"]
    real, z = torch.randn(B, 3, 8, 8), torch.randn(B, 6)
    c = torch.zeros(B, 0)
    training_stats.clear()
    loss.accumulate_gradients("Dmain", real, c, z, c, gain=1.0, cur_nimg=0)
    scores = {k: training_stats.reports[f"Loss/scores/{k}"][0] for k in ("fake", "real")}
    (d_loss,) = training_stats.reports["Loss/D/loss"]
    torch.testing.assert_close(d_loss, scores["fake"] - scores["real"])
    D.zero_grad(set_to_none=True)
    loss.accumulate_gradients("Dreg", real, c, z, c, gain=16.0, cur_nimg=0)
    # every weight is reached (biases move a piecewise-linear critic's input gradient little
    # or not at all)
    grads = {n: p.grad for n, p in D.named_parameters() if n.endswith("weight")}
    assert all(
        g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values()
    )
    assert isinstance(loss.penalty, BanachGP) and int(loss.penalty.calibration.count) == B
    # lipreg's statistics reach the host's channel
    assert "Loss/lipreg/dual_norm_mean" in training_stats.reports


def test_r1_gradients_match_an_independent_l2_r1() -> None:
    """The D gradients of a Dreg round are those of (gamma/2) mean ||grad_x D||^2, by hand."""
    nets = networks("sg3", augment=False)
    D = nets["D"]
    loss = BanachLoss("cpu", **nets, r1_gamma=2.5)
    real = torch.randn(B, 3, 8, 8, dtype=torch.float32)
    c = torch.zeros(B, 0)
    loss.accumulate_gradients("Dreg", real, c, torch.randn(B, 6), c, gain=16.0, cur_nimg=10**6)

    ours = gradients(D)
    D.zero_grad(set_to_none=True)
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x, c).sum(), x, create_graph=True)
    (16.0 * 2.5 / 2 * g.pow(2).flatten(1).sum(1).mean()).backward()
    torch.testing.assert_close(ours, gradients(D))


def test_penalty_state_travels_in_the_host_snapshot(tmp_path: Path) -> None:
    nets = networks("ada")
    loss = BanachLoss("cpu", **nets, penalty="gp", gamma="auto", lam="auto")
    batch = [torch.randn(B, 3, 8, 8), torch.zeros(B, 0), torch.randn(B, 6), torch.zeros(B, 0)]
    loss.accumulate_gradients("Dreg", *batch, sync=True, gain=16)
    D = nets["D"]
    assert getattr(D, ATTRIBUTE) is loss.penalty
    path = _snapshot(tmp_path, D)
    fresh = networks("ada")
    resumed = BanachLoss("cpu", **fresh, penalty="gp", gamma="auto", lam="auto",
                         resume_pkl=str(path))  # fmt: skip
    assert isinstance(resumed.penalty, BanachGP) and isinstance(loss.penalty, BanachGP)
    assert resumed.penalty.gamma == loss.penalty.gamma and resumed.penalty.lam == loss.penalty.lam
    assert int(resumed.penalty.calibration.count) == B
    # The hosts' resume copies buffers by name into a D that carries the penalty.
    src = dict(D.named_buffers())
    for name, t in fresh["D"].named_buffers():
        t.copy_(src[name])
    assert int(resumed.penalty.calibration.count) == B
    # helper for loops that save the loss object themselves
    state = loss.state_dict()
    other = BanachLoss("cpu", **networks("ada"), penalty="gp", gamma="auto", lam="auto")
    other.load_state_dict(state)
    assert other.penalty.gamma == loss.penalty.gamma  # type: ignore[union-attr]
    r1 = BanachLoss("cpu", **networks("ada"))
    with pytest.raises(ValueError, match=r"state\['penalty'\] is not the state of a BanachR1"):
        r1.load_state_dict(state)


def _snapshot(tmp_path: Path, D: nn.Module) -> Path:
    """A host snapshot (a pickle of deep copies in eval mode without gradients)."""
    path = tmp_path / "network-snapshot-000000.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G": nn.Linear(1, 1), "D": copy.deepcopy(D).eval().requires_grad_(False),
                     "G_ema": nn.Linear(1, 1)}, f)  # fmt: skip
    return path


@contextlib.contextmanager
def served(directory: Path) -> Iterator[str]:
    """An HTTP server of ``directory`` on 127.0.0.1; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_resume_pkl_may_be_a_url_as_in_the_hosts(tmp_path: Path) -> None:
    """The hosts open --resume with dnnlib.util.open_url (paths and URLs) and read it with
    legacy.load_network_pkl; so does the loss."""
    nets = networks("ada")
    loss = BanachLoss("cpu", **nets, penalty="gp", gamma="auto", lam="auto")
    batch = [torch.randn(B, 3, 8, 8), torch.zeros(B, 0), torch.randn(B, 6), torch.zeros(B, 0)]
    loss.accumulate_gradients("Dreg", *batch, sync=True, gain=16)
    path = _snapshot(tmp_path, nets["D"])
    dnnlib_util.opened.clear()
    with served(tmp_path) as url:
        resumed = BanachLoss("cpu", **networks("ada"), penalty="gp", gamma="auto", lam="auto",
                             resume_pkl=f"{url}/{path.name}")  # fmt: skip
    assert dnnlib_util.opened == [f"{url}/{path.name}"]
    assert isinstance(resumed.penalty, BanachGP) and isinstance(loss.penalty, BanachGP)
    assert int(resumed.penalty.calibration.count) == B
    assert resumed.penalty.gamma == loss.penalty.gamma


def _trained_snapshot(tmp_path: Path, **options: Any) -> Path:
    """A snapshot of a D whose penalty (built with ``options``) has seen one Dreg round."""
    nets = networks("ada")
    loss = BanachLoss("cpu", **nets, **options)
    batch = [torch.randn(B, 3, 8, 8), torch.zeros(B, 0), torch.randn(B, 6), torch.zeros(B, 0)]
    loss.accumulate_gradients("Dreg", *batch, sync=True, gain=16)
    return _snapshot(tmp_path, nets["D"])


GP = {"penalty": "gp", "gamma": "auto", "lam": "auto"}


@pytest.mark.parametrize(
    ("saved", "resumed", "why"),
    [
        (None, GP, r"holds no lipreg penalty"),
        (
            {},
            GP,
            r"holds a BanachR1 penalty, this loss a BanachGP \(penalty='gp'\); "
            r"pass penalty='r1' to continue",
        ),
        (
            GP,
            {},
            r"holds a BanachGP penalty, this loss a BanachR1 \(penalty='r1'\); "
            r"pass penalty='gp' to continue",
        ),
        (
            GP,
            {**GP, "norm": "lp:p=4"},
            r"holds a penalty for norm 'l2', this loss one for "
            r"'lp:p=4'; pass norm='l2' to continue",
        ),
    ],
    ids=["no-penalty", "r1-as-gp", "gp-as-r1", "another-norm"],
)
def test_a_snapshot_of_another_penalty_is_transfer_learning(
    tmp_path: Path, saved: dict[str, Any] | None, resumed: dict[str, Any], why: str
) -> None:
    """Transfer learning: whatever the snapshot's D holds that cannot restore this loss's
    penalty (nothing, as NVIDIA's pretrained networks; another penalty; another norm), the
    loss warns once, naming the snapshot and why, and attaches a fresh penalty to D."""
    if saved is None:
        path = _snapshot(tmp_path, host.Discriminator())
    else:
        path = _trained_snapshot(tmp_path, **saved)
    nets = networks("ada")
    with pytest.warns(UserWarning, match=why + ".*fresh estimates") as record:
        loss = BanachLoss("cpu", **nets, **resumed, resume_pkl=str(path))
    assert len(record) == 1 and str(path) in str(record[0].message)
    fresh = BanachLoss("cpu", **networks("ada"), **resumed)
    assert type(loss.penalty) is type(fresh.penalty)
    assert loss.penalty.norm == fresh.penalty.norm
    for (name, a), (_, b) in zip(
        loss.penalty.state_dict().items(), fresh.penalty.state_dict().items(), strict=True
    ):
        assert a == b if name.endswith("_extra_state") else torch.equal(a, b)
    assert getattr(nets["D"], ATTRIBUTE) is loss.penalty


def test_the_docs_resume_line_runs_with_and_without_resuming() -> None:
    """The page's line goes into train.py after the host's resume block, where
    ``c.resume_pkl`` exists only when resuming: as written it must run either way."""
    page = (Path(__file__).parents[1] / "docs" / "integrations" / "stylegan.md").read_text()
    lines = [
        line.split("#")[0].strip()
        for block in re.findall(r"```py\n(.*?)```", page, flags=re.DOTALL)
        for line in block.splitlines()
        if "loss_kwargs.resume_pkl" in line
    ]
    assert len(lines) == 2  # StyleGAN3's c, StyleGAN2-ADA's args
    for line in lines:
        name = line.split(".")[0]
        for resume in (None, "https://host/network.pkl"):
            config = dnnlib.EasyDict(loss_kwargs=dnnlib.EasyDict())
            if resume is not None:
                config.resume_pkl = resume
            exec(line, {name: config})
            assert config.loss_kwargs.resume_pkl == resume


def test_per_sample_r1_and_the_minibatch_stddev_layer() -> None:
    """per_sample differs from the batched R1 only through the minibatch-stddev layer."""
    torch.manual_seed(0)
    D = host.Discriminator()
    x, c = torch.randn(8, 3, 8, 8), torch.zeros(8, 0)
    batched = input_gradient(lambda z: D(z, c), x, engine="autograd")
    exact = input_gradient(lambda z: D(z, c), x, engine="autograd", per_sample=True)
    assert not torch.allclose(batched, exact)
    D.mbstd.group_size = 1  # no coupling: both derivatives coincide
    batched = input_gradient(lambda z: D(z, c), x, engine="autograd")
    exact = input_gradient(lambda z: D(z, c), x, engine="autograd", per_sample=True)
    torch.testing.assert_close(batched, exact)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"norm": "sobolv:s=1"}, ValueError, "unknown norm"),
        ({"penalty": "r2"}, ValueError, "penalty must be 'r1'"),
        ({"engine": "func"}, ValueError, "engine must be 'autograd'"),
        ({"lam": 3.0}, ValueError, "lam applies to penalty='gp'"),
        ({"gamma": "auto"}, ValueError, "gamma='auto' applies"),
        ({"style_mixing_prob": 2.0}, ValueError, "style_mixing_prob"),
        ({"blur_init_sigma": 1.0}, ValueError, "StyleGAN3 options"),
    ],
)
def test_bad_configuration_fails_at_construction(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    nets = networks("ada")
    with pytest.raises(error, match=match):
        BanachLoss("cpu", **nets, **kwargs)
    assert not hasattr(nets["D"], ATTRIBUTE)


def test_generator_arguments_identify_the_host() -> None:
    nets = networks("ada")
    with pytest.raises(TypeError, match="G_mapping and G_synthesis"):
        BanachLoss("cpu", D=nets["D"], G_mapping=nets["G_mapping"])


def test_a_missing_dependency_of_the_host_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StyleGAN3's conv2d_gradfix imports pkg_resources, which recent setuptools lack: the
    message must say so, not blame the working directory."""
    others = ["torch_utils.training_stats", "torch_utils.ops.upfirdn2d"]
    host_without_pkg_resources(tmp_path, monkeypatch, "torch_utils.ops.conv2d_gradfix", others)
    nets = networks("sg3")
    with pytest.raises(ImportError) as info:
        BanachLoss("cpu", **nets)
    message = str(info.value)
    assert "pkg_resources" in message and "setuptools<82" in message, message
    assert "torch_utils.ops.conv2d_gradfix" in message and "repository's root" not in message
    assert "grid_sample_gradfix.py" in message  # StyleGAN3's second file with the import
    assert not hasattr(nets["D"], ATTRIBUTE)


def test_missing_host_package_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_utils.training_stats", None)
    nets = networks("sg3")
    with pytest.raises(ImportError, match=r"run train\.py from the host repository"):
        BanachLoss("cpu", **nets)
    assert not hasattr(nets["D"], ATTRIBUTE)


def test_accumulate_gradients_checks_the_host_signature() -> None:
    nets = networks("sg3")
    loss = BanachLoss("cpu", **nets)
    args = [torch.randn(B, 3, 8, 8), torch.zeros(B, 0), torch.randn(B, 6), torch.zeros(B, 0)]
    with pytest.raises(TypeError, match="no sync"):
        loss.accumulate_gradients("Dmain", *args, sync=True, gain=1, cur_nimg=0)
    with pytest.raises(ValueError, match="phase must be one of"):
        loss.accumulate_gradients("Dr1", *args, gain=1, cur_nimg=0)
