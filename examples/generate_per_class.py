"""Generate images of each class from a trained model (a folder written by `vaegmm train` or VAEGMM.save).

    python examples/generate_per_class.py [RUN_DIR] [OUT.png]   # default: runs/api_example, samples.png
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vaegmm import VAEGMM  # noqa: E402

run = sys.argv[1] if len(sys.argv) > 1 else "runs/api_example"
out = sys.argv[2] if len(sys.argv) > 2 else "samples.png"
model = VAEGMM.load(run)
fig, axes = plt.subplots(len(model.classes_), 8, figsize=(8, len(model.classes_)), squeeze=False)
for row, c in enumerate(model.classes_):
    images, _ = model.sample(8, class_=int(c), random_state=row)
    for ax, image in zip(axes[row], images):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    axes[row, 0].set_title(f"class {c}", fontsize=8, loc="left")
fig.savefig(out, dpi=100, bbox_inches="tight")
print(f"wrote {out}")
