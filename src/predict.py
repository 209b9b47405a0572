"""`python src/predict.py <model> <recording>`: the top-k signs for one recording."""

import sys

from signdistill.predict import main

if __name__ == "__main__":
    sys.exit(main())
