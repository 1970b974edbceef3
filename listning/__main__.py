import sys

from listning.cli import main

sys.exit(main())
