import sys

from mfbook.cli import main

sys.exit(main())
