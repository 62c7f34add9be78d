"""`python -m darts_paddle.convert_torch`: the command the READMEs document.  The
conversion itself is darts_paddle/state/convert_torch.py."""

import sys

from .state.convert_torch import main

if __name__ == "__main__":
    sys.exit(main())
