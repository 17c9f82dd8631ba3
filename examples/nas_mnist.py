"""Random search against aging evolution on MNIST (8k train / 2k test of the 10k MNIST test set) under the
same budget, through ``automl/nas``; prints the comparison table (see ``nas_compare.py`` for the options).

    ORCHESTRA_URL=http://127.0.0.1:8080 python examples/nas_mnist.py [--budget 900] [--constraint-parameters 20000]
"""

from __future__ import annotations

import sys

from nas_compare import main, parse

if __name__ == "__main__":
    main(parse(["mnist", *sys.argv[1:]], default_generators=("random", "evolution")))
