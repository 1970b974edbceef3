import sys

from consumers.conformance.cli import main

sys.exit(main())
