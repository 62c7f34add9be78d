"""`python -m darts_paddle.convert_torch`: the command the READMEs document."""

import sys

from .convert import main

if __name__ == "__main__":
    sys.exit(main())
