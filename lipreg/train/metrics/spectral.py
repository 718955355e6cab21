"""A spectral quality metric: the radially averaged power spectrum of generated images against
that of real images, in decibels, at every frequency the images hold.

The digits metric and the Inception metrics judge images through a network that sees a
reduced image (the digits classifier sees 8x8 block means); pixel-level noise, checkerboards and
blur live at frequencies they barely see. The one-dimensional ("reduced", "azimuthally
integrated") power spectrum is the established tool for these: Durall et al. 2020 ("Watch
your up-convolution", CVPR) integrate the DFT power over circles of radius ``|f|`` and show
that GAN up-sampling fails to reproduce the high-frequency end; Dzanic et al. 2020 ("Fourier
spectrum discrepancies in deep network generated images", NeurIPS) average the Fourier
magnitudes over radius up to the corner of the frequency square and find generated images'
upper quarter of that range to decay unlike real images'; Schwarz et al. 2021 ("On the
frequency bias of generative models", NeurIPS) compare the mean reduced spectra of real and
generated images on a log scale.

The spectrum (:func:`radial_power_spectrum`). The DFT treats an image as periodic, and the
jump from its last row to its first (every digit has ink in its top and bottom rows) puts a
cross of power along the frequency axes that belongs to no content of the image and, at
16x16, dominates real digits' power near the Nyquist frequency. Each channel ``u`` ``[H, W]``
is therefore first reduced to its periodic component ``p = u - s`` (Moisan 2011, "Periodic plus
smooth image decomposition", J. Math. Imaging Vis. 39): ``s`` is the smooth image whose
periodic Laplacian is the border jumps, ``v(0, .) = u(H-1, .) - u(0, .)``,
``v(H-1, .) = -v(0, .)``, likewise for the columns, ``v = 0`` inside; in the Fourier domain
``s_hat(k) = v_hat(k) / (2 cos(2 pi k_y / H) + 2 cos(2 pi k_x / W) - 4)``, ``s_hat(0) = 0``.
An image without border jumps is its own periodic component. With
``p_hat(k) = u_hat(k) - s_hat(k)``, the DFT of ``p``
(``u_hat(k) = sum_n u(n) exp(-2 pi i (k_y n_y / H + k_x n_x / W))``), the power of coefficient
``k`` is ``|p_hat(k)|^2 / (H W)^2``; over ``k != 0`` these sum to the pixel variance of ``p``
(Parseval). Coefficient ``k`` has the frequency ``f(k) = (fftfreq(H)[k_y], fftfreq(W)[k_x])`` in
cycles per pixel and the radius ``rho = |f|``, from 0 to the corner ``sqrt(2) / 2`` (for even
sides). Bins have the width ``Delta = 1 / min(H, W)``: coefficient ``k != 0`` falls in bin
``b = max(1, floor(rho / Delta + 1/2))``, ``b = 1 .. K``, so the bins of an ``N x N`` image are
the integer radii of the DFT grid, a non-square image's bins share the unit (cycles per pixel)
and the coarser axis's spacing, and no bin is empty. The spectrum ``S(b)`` is the mean power
over the coefficients of bin ``b``, the images and the channels; ``sum_b count(b) S(b)`` is
the mean pixel variance of the periodic components.

- **Corners kept.** Frequencies beyond the axes' Nyquist frequency 1/2 (radius up to
  ``sqrt(2) / 2``) are binned like the others, as Durall et al.'s and Dzanic et al.'s code
  does: a transposed convolution's checkerboard lives at ``(1/2, 1/2)``, radius 0.707, in the
  top bin.
- **No DC.** The DC coefficient (the mean brightness, not a spatial frequency) is in no bin:
  its power dwarfs the rest by orders of magnitude and is judged by the FID-like metrics.
- **No window.** The periodic component removes the border's jumps without tapering the
  image, so a checkerboard stays at ``(1/2, 1/2)`` (a window would smear it over the
  neighbouring frequencies and weight the centre of the image above its border).
- **Mean power, then the log.** Spectra are averaged over images before the logarithm (Durall
  et al.'s code averages ``20 log10 |X|`` instead), so decibels are ratios of mean powers:
  +8.1 dB is 6.5 times the real power.

The scores (:class:`SpectralQuality`). With the spectra ``S_g`` of the samples and ``S_r`` of
the real images, each raised by the noise floor ``eps = noise_floor / (H W)`` per coefficient
(default: the quantisation noise of 8-bit images in ``[-1, 1]``, ``(2/255)^2 / 12``, spread
evenly over the ``H W`` coefficients -- power below it does not survive being saved as an
8-bit image, and it keeps the ratio finite where a spectrum is exactly zero, e.g. for flat
images), the log ratio per bin is
``d(b) = 10 log10((S_g(b) + eps) / (S_r(b) + eps))`` dB, and with ``H`` the bins whose
frequencies all lie above half the axis Nyquist frequency, ``(b - 1/2) Delta >= 1/4`` (the
octave an image at half the resolution cannot hold, plus the corners):

- ``distance = sqrt(mean_b d(b)^2)`` over all ``K`` bins (dB, 0 for equal spectra);
- ``hf_distance = sqrt(mean_{b in H} d(b)^2)`` (dB);
- ``hf_excess = mean_{b in H} d(b)`` (dB, signed): positive for more high-frequency power than
  real images (noise, checkerboards, blocky upsampling), negative for less (blur).

Every bin counts once, whatever its number of coefficients, as in the plotted spectrum.

    >>> quality = SpectralQuality(real)          # real images [M, C, H, W]
    >>> scores = quality(samples)                # samples [N, C, H, W], same C, H, W
    >>> scores.hf_excess, scores.scalars()
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lipreg._validation import check_real
from lipreg.train.metrics.checks import check_images

NOISE_FLOOR = (2 / 255) ** 2 / 12
"""The variance of the quantisation noise of 8-bit images in ``[-1, 1]`` (step ``2/255``):
the default floor of :class:`SpectralQuality`, spread evenly over the DFT coefficients."""

HIGH_FREQUENCY = 0.25
"""The lower edge of the high-frequency band, in cycles per pixel: half the Nyquist frequency."""

MIN_SIDE = 4
"""The smallest image side: bins below and above :data:`HIGH_FREQUENCY` need 4 pixels."""

_CHUNK = 2**22  # values transformed at once: bounds the memory for any number of images


@dataclass(frozen=True, eq=False)
class RadialSpectrum:
    """The radially averaged power spectrum of a set of images (:func:`radial_power_spectrum`);
    ``K`` bins, DC excluded."""

    radius: Tensor  #: ``[K]`` mean radius of each bin's frequencies, cycles per pixel
    power: Tensor  #: ``[K]`` mean power per DFT coefficient, ``S(b)``
    count: Tensor  #: ``[K]`` number of DFT coefficients in each bin (int64)
    high: Tensor  #: ``[K]`` bool: bins wholly above :data:`HIGH_FREQUENCY`


@functools.lru_cache(maxsize=16)
def _bins(height: int, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The bin of every DFT coefficient ``[H, W]`` (0 for DC), and per bin 1..K the count, the
    mean radius and the high-frequency mask."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(width, dtype=torch.float64)[None, :]
    rho = (fy**2 + fx**2).sqrt()
    delta = 1 / min(height, width)
    # floor(x + 1/2), not round(): ties to even would skip a bin
    index = torch.floor(rho / delta + 0.5).long().clamp(min=1)
    index[0, 0] = 0
    flat = index.flatten()
    count = torch.bincount(flat)[1:]
    radius = torch.bincount(flat, rho.flatten())[1:] / count
    bins = torch.arange(1, count.numel() + 1, dtype=torch.float64)
    high = (bins - 0.5) * delta >= HIGH_FREQUENCY
    return flat, count, radius, high


def radial_power_spectrum(images: Tensor) -> RadialSpectrum:
    """The radially averaged power spectrum of ``images`` ``[N, C, H, W]`` (``H, W >= 4``):
    ``S(b)``, the mean over images, channels and the DFT coefficients of bin ``b`` of
    ``|p_hat(k)|^2 / (H W)^2``, ``p_hat`` the DFT of a channel's periodic component (see :mod:`the
    module <lipreg.train.metrics.spectral>` for the decomposition and the bins), computed in
    float64 on the CPU.

    ``(count * power).sum()`` is the mean pixel variance of the periodic components (of the
    images themselves when their opposite borders agree).
    """
    return _spectrum(check_images(images, "images", MIN_SIDE))


@functools.lru_cache(maxsize=16)
def _inverse_laplacian(height: int, width: int) -> Tensor:
    """``1 / (2 cos(2 pi k_y / H) + 2 cos(2 pi k_x / W) - 4)`` on the ``rfft2`` grid
    ``[H, W // 2 + 1]``, 0 at ``k = 0``."""
    ky = torch.arange(height, dtype=torch.float64)[:, None]
    kx = torch.arange(width // 2 + 1, dtype=torch.float64)[None, :]
    eigen = 2 * torch.cos(2 * math.pi * ky / height) + 2 * torch.cos(2 * math.pi * kx / width) - 4
    eigen[0, 0] = math.inf
    return 1 / eigen


def _spectrum(x: Tensor) -> RadialSpectrum:
    n, c, h, w = x.shape
    half = w // 2 + 1
    smooth = _inverse_laplacian(h, w)
    total = torch.zeros(h, half, dtype=torch.float64)
    for part in torch.split(x.detach(), max(1, _CHUNK // (c * h * w))):
        u = part.to("cpu", torch.float64)
        jumps = torch.zeros_like(u)  # v: the jumps across the borders of the periodic image
        jumps[..., 0, :] = u[..., -1, :] - u[..., 0, :]
        jumps[..., -1, :] = -jumps[..., 0, :]
        columns = u[..., :, -1] - u[..., :, 0]
        jumps[..., :, 0] += columns
        jumps[..., :, -1] -= columns
        # p_hat = u_hat - v_hat / eigenvalues; the mean changes p_hat(0) only, in no bin
        periodic = torch.fft.rfft2(u) - torch.fft.rfft2(jumps) * smooth
        # summed over a leading axis of contiguous rows: several times faster than over the
        # axes 0, 1 and -1 at once
        parts = torch.view_as_real(periodic).reshape(-1, 2 * h * half)
        total += parts.square().sum(0).view(h, half, 2).sum(2)
    # the real input's other half: |p_hat(-k_y, W - k_x)| = |p_hat(k_y, k_x)|
    rows = -torch.arange(h) % h
    power = torch.cat([total, total[rows, 1 : w - w // 2].flip(1)], dim=1).flatten()
    flat, count, radius, high = _bins(h, w)
    power = torch.bincount(flat, power)[1:] / (count * n * c * (h * w) ** 2)
    # copies: the cached bins stay intact whatever a caller does with the result
    return RadialSpectrum(
        radius=radius.clone(), power=power, count=count.clone(), high=high.clone()
    )


def _log_ratio(fake: Tensor, real: Tensor, floor: float) -> Tensor:
    return 10 * torch.log10((fake + floor) / (real + floor))


@dataclass(frozen=True, eq=False)
class SpectralScores:
    """The spectral quality of one set of samples (see :mod:`lipreg.train.metrics.spectral`)."""

    distance: float  #: RMS of the log ratio over all bins, dB
    hf_distance: float  #: RMS of the log ratio over the high-frequency bins, dB
    hf_excess: float  #: mean log ratio over the high-frequency bins, dB (< 0: deficit)
    radius: Tensor  #: ``[K]`` mean radius of each bin, cycles per pixel
    real: Tensor  #: ``[K]`` the real images' spectrum ``S_r``
    fake: Tensor  #: ``[K]`` the samples' spectrum ``S_g``
    high: Tensor  #: ``[K]`` bool: the high-frequency bins
    floor: float  #: ``eps``, added to both spectra per coefficient

    @property
    def log_ratio(self) -> Tensor:
        """``d(b) = 10 log10((S_g(b) + eps) / (S_r(b) + eps))`` ``[K]``, dB."""
        return _log_ratio(self.fake, self.real, self.floor)

    def scalars(self, prefix: str = "metric/spectral_") -> dict[str, float]:
        """``{prefix + "distance", prefix + "hf_distance", prefix + "hf_excess"}`` as floats
        (dB), e.g. for a scalar log."""
        return {
            prefix + "distance": self.distance,
            prefix + "hf_distance": self.hf_distance,
            prefix + "hf_excess": self.hf_excess,
        }


class SpectralQuality:
    """Scores sets of generated images by their radially averaged power spectrum against that
    of real ``reference`` images.

    Args:
        reference: real images ``[M, C, H, W]`` (``H, W >= 4``), e.g. a held-out split at the
            training resolution; their spectrum is computed once.
        noise_floor: the pixel variance of white noise below which power is not told apart
            (``> 0``), spread evenly over the ``H W`` coefficients and added to both spectra;
            default :data:`NOISE_FLOOR`, 8-bit quantisation of images in ``[-1, 1]`` (pass
            ``(1/255)**2 / 12`` for images in ``[0, 1]``).
    """

    def __init__(self, reference: Tensor, *, noise_floor: float = NOISE_FLOOR) -> None:
        floor = check_real(noise_floor, "noise_floor", 0.0, math.inf, open_low=True)
        x = check_images(reference, "reference", MIN_SIDE)
        self.shape = tuple(x.shape[1:])
        self.reference = _spectrum(x)
        self.floor = floor / (self.shape[1] * self.shape[2])

    def __call__(self, samples: Tensor) -> SpectralScores:
        """The :class:`SpectralScores` of ``samples`` ``[N, C, H, W]`` (the reference's
        ``C, H, W``)."""
        x = check_images(samples, "samples", MIN_SIDE)
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"samples must be images of the reference's shape [C, H, W] = "
                f"{list(self.shape)}, got {list(x.shape[1:])}; score samples at the "
                "reference's resolution, or build SpectralQuality from real images of theirs"
            )
        fake = _spectrum(x)
        real = self.reference
        d = _log_ratio(fake.power, real.power, self.floor)
        high = d[real.high]
        return SpectralScores(
            distance=float(d.square().mean().sqrt()),
            hf_distance=float(high.square().mean().sqrt()),
            hf_excess=float(high.mean()),
            radius=real.radius,
            real=real.power,
            fake=fake.power,
            high=real.high,
            floor=self.floor,
        )
