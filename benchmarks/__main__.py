"""`python -m benchmarks`: run the benchmarks on an embedded broker and write .bench/results.json."""

import sys

from benchmarks.run import main

sys.exit(main())
