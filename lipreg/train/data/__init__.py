"""Training data of the reference trainer: generated, embedded, or read from local files, and
CIFAR-10 and Fashion-MNIST downloaded on request.

Every data set is a ``torch.utils.data.Dataset`` of fixed size whose items are float32
samples of shape :attr:`TrainingData.sample_shape`: ``[2]`` points for the toy sets,
``[C, H, W]`` images scaled to ``[-1, 1]`` otherwise. Build them by name with
:func:`load_dataset`; :data:`DATASETS` lists the names with one-line descriptions.

Toy 2-D sets (WGAN-GP's toy suite, Gulrajani et al. 2017, ``gan_toy.py``; same scales, noise
and divisors, drawn once from ``seed`` instead of fresh per batch):

- ``8gaussians``: centres ``2 (cos(k pi/4), sin(k pi/4))``, ``k`` uniform in ``0..7``, plus
  ``N(0, 0.02^2)`` noise per coordinate, all divided by 1.414.
- ``25gaussians``: centres ``(2i, 2j)``, ``i, j in -2..2``, equally many samples per centre
  (then shuffled), plus ``N(0, 0.05^2)`` noise, all divided by 2.828.
- ``swissroll``: ``sklearn.datasets.make_swiss_roll(noise=0.25)``, coordinates 0 and 2,
  divided by 7.5.

Images:

- ``patches``: ``image_size`` x ``image_size`` RGB patches (32 by
  default) cut at uniformly random positions from the two photographs scikit-learn ships
  (``load_sample_images``: china.jpg and flower.jpg, 427 x 640 each), at full size or
  downscaled by 2 or 4 (block means; the source, photograph and scale, is uniform among
  those large enough for the patch), so that patches hold structure at several scales.
- ``digits`` (the default data) / ``digits-test``: scikit-learn's 8x8 digits,
  ``[1, 8, 8]``, grey levels 0..16 mapped to ``x / 8 - 1``, labels 0..9: the 1,198 training
  digits, or the 599 held out for the digits quality metric (every third one).
- ``cifar10`` / ``cifar10-test``: the training (``data_batch_1..5``) or test (``test_batch``)
  images of CIFAR-10 read from the official python version in a local directory (by default
  the cache, :func:`cache_dir`), with a restricted unpickler; labels 0..9. Nothing is
  downloaded unless asked: ``download=True`` (``--download``) fetches the official archive
  into that directory when it is absent, and replaces missing or unreadable batch files
  (:func:`load_cifar10`, :func:`fetch_cifar10`: MD5 checked against the published one,
  unpacked safely and atomically, reused by later runs; a mirror through
  ``LIPREG_CIFAR10_URL`` / ``LIPREG_CIFAR10_MD5``).
- ``fashion-mnist`` / ``fashion-mnist-test``: the 60,000 training or 10,000 test images of
  Fashion-MNIST, ``[1, 28, 28]``, labels 0..9, from the four IDX files (gzipped or not) in
  the data root, else the cache, else Debian's ``/usr/share/datasets/fashion-mnist``
  (:func:`read_fashion_mnist`: a strict IDX reader, each file's content checked against its
  recorded SHA-256). ``download=True`` fetches the official ``.gz`` files, MD5-checked
  (:func:`fetch_fashion_mnist`).
- ``folder``: every image file under a directory (recursively), decoded with PIL, converted
  to RGB, resized so that the shorter side is ``image_size`` (bicubic) and centre-cropped.

8-bit images map ``v in 0..255`` to ``v / 127.5 - 1``. ``image_size`` resizes the embedded
``digits``, ``fashion-mnist`` and ``cifar10`` images (bicubic with antialiasing, clamped to
``[-1, 1]``; the resized copy is held as float32, four times the memory of the 8-bit
original).
"""

from lipreg.train.data.archive import UnsafeArchiveError
from lipreg.train.data.base import Kind, TensorData, TrainingData
from lipreg.train.data.cifar10 import CIFAR10_URL, ForbiddenPickleError, read_cifar10
from lipreg.train.data.cifar10_download import CIFAR10_ARCHIVE, fetch_cifar10, load_cifar10
from lipreg.train.data.download import DownloadError, Remote, cache_dir
from lipreg.train.data.embedded import PATCH_SCALES
from lipreg.train.data.fashion_mnist import (
    FASHION_MNIST_FILES,
    FASHION_MNIST_URL,
    IdxFile,
    fetch_fashion_mnist,
    read_fashion_mnist,
)
from lipreg.train.data.folder import IMAGE_EXTENSIONS, ImageFolder
from lipreg.train.data.idx import IdxError, read_idx
from lipreg.train.data.registry import (
    DATASETS,
    DEFAULT_IMAGE_DATASET,
    DatasetSpec,
    describe_datasets,
    load_dataset,
)

__all__ = [
    "CIFAR10_ARCHIVE",
    "CIFAR10_URL",
    "DATASETS",
    "DEFAULT_IMAGE_DATASET",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_URL",
    "IMAGE_EXTENSIONS",
    "PATCH_SCALES",
    "DatasetSpec",
    "DownloadError",
    "ForbiddenPickleError",
    "IdxError",
    "IdxFile",
    "ImageFolder",
    "Kind",
    "Remote",
    "TensorData",
    "TrainingData",
    "UnsafeArchiveError",
    "cache_dir",
    "describe_datasets",
    "fetch_cifar10",
    "fetch_fashion_mnist",
    "load_cifar10",
    "load_dataset",
    "read_cifar10",
    "read_fashion_mnist",
    "read_idx",
]
