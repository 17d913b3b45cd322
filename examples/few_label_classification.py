"""Few-label classification of your own images: fit on every image with -1 for the unlabelled ones.

    python examples/few_label_classification.py [MNIST_NPZ]   # default: ../shared/data/mnist/mnist.npz

Replace the loading lines with your own arrays: images (N, H, W) uint8 or float in [0, 1], labels with -1
wherever an image is unlabelled.
"""

import sys

import numpy as np

from vaegmm import VAEGMM

path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist/mnist.npz"
with np.load(path) as d:
    keep, keep_test = np.isin(d["y_train"], [1, 4, 8]), np.isin(d["y_test"], [1, 4, 8])
    X, y_true, X_test, y_test = d["x_train"][keep], d["y_train"][keep], d["x_test"][keep_test], d["y_test"][keep_test]
y = np.full(len(X), -1)  # scikit-learn's mark for "unlabelled"
rng = np.random.default_rng(0)
for c in (1, 4, 8):
    y[rng.choice(np.flatnonzero(y_true == c), 5, replace=False)] = c  # 5 labels per class
model = VAEGMM().fit(X, y)
print(f"score on {len(X_test)} test images: {model.score(X_test, y_test):.4f}")
print("first predictions:", model.predict(X_test[:10]).tolist(), "true:", y_test[:10].tolist())
novel = model.score_samples(np.random.default_rng(1).uniform(0, 1, (5, 28, 28))) < -model.novelty_.threshold_
print(f"noise images flagged as no known class: {int(novel.sum())} of 5")
model.save("runs/api_example")  # vae.pth + gmm_params.pkl, as `vaegmm train` writes them
