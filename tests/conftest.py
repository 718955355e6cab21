"""Shared test helpers: small critics and independent (NumPy) reference computations."""

from __future__ import annotations

import hashlib
import itertools
import math
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from lipreg import Lp, Norm, Sobolev
from lipreg.train.data import Remote


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or fills the user's download cache: ``LIPREG_CACHE`` (which
    ``lipreg.train.data.cache_dir`` follows) points to a fresh directory."""
    monkeypatch.setenv("LIPREG_CACHE", str(tmp_path_factory.mktemp("cache")))


class ConvCritic(nn.Module):
    """A small smooth image critic [B, C, H, W] -> [B, 1] (softplus: twice differentiable)."""

    def __init__(self, channels: int = 3, width: int = 6, size: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, stride=2)
        self.head = nn.Linear(width * (size // 2) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.softplus(self.conv1(x))
        h = nn.functional.softplus(self.conv2(h))
        return self.head(h.flatten(1))


class FirstOrderOnly(torch.autograd.Function):
    """softplus whose backward cannot itself be differentiated (``@once_differentiable``), an
    old-style Function (no ``setup_context``: ``torch.func`` refuses it), as fused kernels
    such as FlashAttention are."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(x)
        return nn.functional.softplus(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


class FirstOrderOnlyNew(torch.autograd.Function):
    """:class:`FirstOrderOnly` as a new-style Function (``setup_context``), which
    ``torch.func`` transforms."""

    @staticmethod
    def forward(x):  # type: ignore[no-untyped-def, override]
        return nn.functional.softplus(x)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(inputs[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


class FirstOrderCritic(nn.Module):
    """``[B, 3, 8, 8] -> [B, 1]`` through a :class:`FirstOrderOnly` activation (or
    :class:`FirstOrderOnlyNew` with ``new_style``): no second derivative."""

    def __init__(self, new_style: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(192, 4)
        self.head = nn.Linear(4, 1)
        self.op = FirstOrderOnlyNew if new_style else FirstOrderOnly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.op.apply(self.lin(x.flatten(1))))


def mlp(n_in: int, width: int = 16, depth: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.Tanh()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def dft_matrix(n: int) -> np.ndarray:
    j = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(j, j) / n)


def dense_sobolev(spatial: tuple[int, ...], channels: int, s: float, c: float) -> np.ndarray:
    """The Sobolev filter as a dense real matrix on flattened [C, *spatial] samples, built from
    explicit DFT matrices and a multiplier written out index by index (no torch, no rfft)."""
    f = np.array([[1.0 + 0j]])
    for n in spatial:
        f = np.kron(f, dft_matrix(n))
    mult = np.empty(int(np.prod(spatial)))
    for flat, idx in enumerate(itertools.product(*(range(n) for n in spatial))):
        xi2 = sum((min(k, n - k) / (n // 2)) ** 2 for k, n in zip(idx, spatial, strict=True))
        mult[flat] = (1 + c * xi2) ** (s / 2)
    t = np.linalg.inv(f) @ np.diag(mult) @ f
    assert np.abs(t.imag).max() < 1e-10  # the multiplier is even, so the filter is real
    return np.kron(np.eye(channels), t.real)


def dense_filter(norm: Norm, shape: tuple[int, ...], dual: bool = False) -> np.ndarray:
    """The matrix T with ``norm(x) = ||T x||_p`` (``dual``: ``norm.dual(g) = ||T g||_q``) on
    flattened [C, *spatial] samples of ``shape``: the dense Sobolev filter of order s (-s for
    the dual), or the identity for L^p."""
    if isinstance(norm, Sobolev):
        return dense_sobolev(shape[1:], shape[0], -norm.s if dual else norm.s, norm.c)
    assert isinstance(norm, Lp), norm
    return np.eye(math.prod(shape))


def dense_norm(layer: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...]) -> float:
    """The l2 operator norm of the linear part of ``layer`` on [*shape] inputs, from its dense
    matrix (the layer applied to every basis vector, minus its value at 0), float64."""
    n = math.prod(shape)
    basis = torch.eye(n, dtype=torch.float64).view(n, *shape)
    with torch.no_grad():
        out = layer(basis) - layer(torch.zeros_like(basis[:1]))  # remove the bias
    return float(torch.linalg.matrix_norm(out.reshape(n, -1), ord=2))


def images(b: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``b`` "real" images uniform in [-1, 1) and ``b`` Gaussian "fakes", [b, 3, 8, 8]."""
    return torch.rand(b, 3, 8, 8, dtype=dtype) * 2 - 1, torch.randn(b, 3, 8, 8, dtype=dtype)


def assert_same_grads(
    a: nn.Module,
    b: nn.Module,
    rtol: float,
    atol: float,
    without_grad: Sequence[str] | None = None,
) -> None:
    """``a``'s parameter gradients are close to ``b``'s (``b`` the expected ones); a parameter
    without a gradient (no path to the loss) has none in both. If ``without_grad`` is given,
    exactly the parameters of ``a`` it names have no gradient."""
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        if p.grad is None or q.grad is None:
            assert p.grad is None and q.grad is None, name
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=atol)
    if without_grad is not None:
        assert [n for n, p in a.named_parameters() if p.grad is None] == list(without_grad)


def wgan_gp(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """Gulrajani et al.'s gradient penalty as commonly hand-written, lam = 10 (one
    ``torch.rand`` draw of [B, 1, 1, 1] interpolation weights, then the critic)."""
    alpha = torch.rand(real.size(0), 1, 1, 1)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(interpolates)
    gradients = torch.autograd.grad(
        outputs=out, inputs=interpolates, grad_outputs=torch.ones_like(out), create_graph=True
    )[0]
    gradients = gradients.view(gradients.size(0), -1)
    return ((gradients.norm(2, dim=1) - 1) ** 2).mean() * 10


def brute_force_per_sample(
    critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """g_i = d D(x)_i / d x_i, one full backward per sample."""
    rows = []
    for i in range(x.shape[0]):
        z = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(z).flatten()[i], z)
        rows.append(g[i])
    return torch.stack(rows)


class Calls(nn.Module):
    """Counts forward calls, to show that a rejected input never reaches the critic."""

    def __init__(self, inner: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def leaf_parameters(critic: nn.Module) -> tuple[torch.Tensor, ...]:
    """Detached copies of ``critic``'s parameters that require grad (inputs of gradcheck)."""
    return tuple(p.detach().clone().requires_grad_(True) for p in critic.parameters())


def functional(
    critic: nn.Module, params: tuple[torch.Tensor, ...]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``critic`` as a function of its input with ``params`` in place of its parameters."""
    names = [n for n, _ in critic.named_parameters()]
    mapping = dict(zip(names, params, strict=True))
    return lambda x: torch.func.functional_call(critic, mapping, (x,))


# --- a local file server for the tests of downloads ------------------------------


@dataclass
class Route:
    """What the server answers on one path: ``body`` (all of it announced in
    Content-Length), of which only the first ``cut`` bytes are sent if given; ``then`` runs
    after sending (the connection stays open until it returns); ``first`` before answering."""

    body: bytes
    cut: int | None = None
    first: Callable[[], None] | None = None
    then: Callable[[], None] | None = None


class FileServer:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, for tests of downloads: it
    serves the :class:`Route` registered under each path and records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.release = threading.Event()  # ends every `then` that waits for it
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                if route.first is not None:
                    route.first()
                self.send_response(200)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body[: route.cut])
                self.wfile.flush()
                if route.then is not None:
                    route.then()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def remote(
        self,
        name: str,
        body: bytes,
        *,
        algorithm: str = "md5",
        digest: str | None = None,
        **route: object,
    ) -> Remote:
        """Serve ``body`` as ``/name``; its checksum is ``body``'s unless ``digest`` is given."""
        self.routes[f"/{name}"] = Route(body, **route)  # type: ignore[arg-type]
        port = self.httpd.server_address[1]
        return Remote(
            url=f"http://127.0.0.1:{port}/{name}",
            filename=name,
            algorithm=algorithm,
            digest=digest or hashlib.new(algorithm, body).hexdigest(),
        )

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A :class:`FileServer` on 127.0.0.1, closed after the test."""
    server = FileServer()
    yield server
    server.close()


# --- a stand-in for torch-fidelity ------------------------------------------------------


def fidelity_state() -> dict[str, torch.Tensor]:
    """The stand-in Inception's "standard weights": a seeded projection of 8x8 RGB images to
    16 features (the first 10 of which serve as logits)."""
    return {"proj": torch.randn(3 * 8 * 8, 16, generator=torch.Generator().manual_seed(0))}


@pytest.fixture
def fidelity(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """torch-fidelity cannot be installed beside this torch: a stand-in module with its
    feature extractor's constructor and call signature takes its place in ``sys.modules``.

    Its constructor loads ``feature_extractor_weights_path`` as torch-fidelity's does,
    ``torch.load(path, weights_only=False)`` (a full unpickling) followed by a strict
    ``load_state_dict``, so what lipreg hands it is exercised for real. Returns what it saw:
    ``name``, ``features``, ``path`` (what was passed as the weights), ``state`` (the tensors
    loaded), ``inputs``, and ``extractor``, the class."""
    seen: dict[str, Any] = {}

    class FakeExtractor(nn.Module):
        def __init__(
            self, name: str, features_list: list[str], feature_extractor_weights_path: Any
        ) -> None:
            super().__init__()
            seen.update(name=name, features=features_list, path=feature_extractor_weights_path)
            self.proj = nn.Parameter(torch.zeros(3 * 8 * 8, 16))
            state = torch.load(feature_extractor_weights_path, weights_only=False)
            self.load_state_dict(state)
            seen["state"] = {k: v.clone() for k, v in self.state_dict().items()}

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            assert x.dtype == torch.uint8 and x.shape[1] == 3
            seen.setdefault("inputs", []).append(x)
            size = x.shape[-1]  # torch-fidelity resizes to 299; the stand-in works on 8x8
            if size != 8:
                x = nn.functional.interpolate(x.float(), size=(8, 8), mode="area")
            f = x.float().flatten(1) @ self.proj / 1000
            return f, f[:, :10]

    module = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    module.FeatureExtractorInceptionV3 = FakeExtractor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", module)
    seen["extractor"] = FakeExtractor
    return seen


def host_without_pkg_resources(
    root: Path, monkeypatch: pytest.MonkeyPatch, gradfix: str, others: Sequence[str] = ()
) -> None:
    """Install under ``root``, for one test, a host package whose module ``gradfix`` (dotted
    name) imports ``pkg_resources`` as StyleGAN3's and StudioGAN's do, with ``pkg_resources``
    missing as under setuptools >= 82; ``others`` are the package's other modules (empty).
    The stand-in of that package is hidden until the test ends."""
    package = gradfix.split(".")[0]
    for name in (gradfix, *others):
        parts = name.split(".")
        for depth in range(1, len(parts)):
            folder = root.joinpath(*parts[:depth])
            folder.mkdir(exist_ok=True)
            (folder / "__init__.py").touch()
        body = "from pkg_resources import parse_version\n" if name == gradfix else ""
        root.joinpath(*parts).with_suffix(".py").write_text(body)
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setitem(sys.modules, "pkg_resources", None)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` ``[N, 1, H, W]`` blurred by a Gaussian of standard deviation ``sigma`` pixels
    (truncated at 3 sigma, edges replicated)."""
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :])[None, None]
    return nn.functional.conv2d(nn.functional.pad(x, (radius,) * 4, mode="replicate"), kernel)
