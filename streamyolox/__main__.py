import sys

from streamyolox.cli import main

sys.exit(main())
