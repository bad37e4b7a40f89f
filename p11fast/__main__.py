import sys

from p11fast.cli import main

sys.exit(main())
