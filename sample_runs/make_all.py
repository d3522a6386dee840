"""Regenerate every shipped recording: `python sample_runs/make_all.py [--quick] [--out DIR]`."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bn_paper.py", "lenet.py", "gamma_beta.py", "tiny_batches.py")

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=True)
