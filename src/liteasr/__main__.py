import sys

from liteasr.cli import main

sys.exit(main())
