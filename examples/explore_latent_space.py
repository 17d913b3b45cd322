"""Explore the latent space: scatter the latent means by class and decode a straight path between two images.

    python examples/explore_latent_space.py [RUN_DIR] [IMAGES.npz] [OUT.png]
    # default: runs/api_example, ../shared/data/mnist_1_4_8/mnist_1_4_8_test.npz, latent.png
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vaegmm import VAEGMM  # noqa: E402

run = sys.argv[1] if len(sys.argv) > 1 else "runs/api_example"
data = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/mnist_1_4_8/mnist_1_4_8_test.npz"
out = sys.argv[3] if len(sys.argv) > 3 else "latent.png"
model = VAEGMM.load(run)
with np.load(data) as d:
    X = d["data"]
Z = model.transform(X)  # latent means (N, latent_dim); the first two dimensions are drawn
classes = model.predict(X)
path = model.inverse_transform(np.linspace(Z[0], Z[1], 8))  # 8 images morphing from X[0] to X[1]
fig = plt.figure(figsize=(9, 5))
ax = fig.add_subplot(1, 2, 1)
for c in model.classes_:
    ax.scatter(*Z[classes == c, :2].T, s=2, label=f"class {c}")
ax.plot(*Z[:2, :2].T, "k--")
ax.legend(markerscale=5)
for i, image in enumerate(path):
    sub = fig.add_subplot(4, 4, 4 * (i // 2) + 3 + i % 2)
    sub.imshow(image, cmap="gray", vmin=0, vmax=1)
    sub.axis("off")
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"wrote {out}")
