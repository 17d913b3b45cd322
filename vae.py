"""The course's entry point, kept call-for-call compatible:

    python vae.py TRAIN.npz VAL.npz train vae.pth gmm_params.pkl
    python vae.py RECON.npz test_reconstruction vae.pth
    python vae.py TEST.npz test_classifier vae.pth gmm_params.pkl

It works from any folder (outputs land in the current one) whether or not vaegmm is installed.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    try:
        from vaegmm.cli import course_main
    except ImportError:  # not installed: use the source tree beside this file
        sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
        from vaegmm.cli import course_main
    sys.exit(course_main())
