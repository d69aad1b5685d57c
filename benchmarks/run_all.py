"""``make bench``: every CPU benchmark, printed as ratios against plain backprop in the same run.

The numbers also go to benchmarks/results/cpu-*.json, which the performance appendix reads.
"""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
for script, args in (
    ("bench_steps.py", ["--json", str(here / "results" / "cpu-steps.json")]),
    ("bench_epochs.py", ["--memory", "--json", str(here / "results" / "cpu-epochs.json")]),
    ("bench_rnn.py", ["--json", str(here / "results" / "cpu-rnn.json")]),
):
    subprocess.run([sys.executable, str(here / script), *args, *sys.argv[1:]], check=True)
