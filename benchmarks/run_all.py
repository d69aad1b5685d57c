"""``make bench``: every CPU benchmark, printed as ratios against plain backprop in the same run."""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
for script, args in (("bench_steps.py", []), ("bench_epochs.py", ["--memory"])):
    subprocess.run([sys.executable, str(here / script), *args, *sys.argv[1:]], check=True)
