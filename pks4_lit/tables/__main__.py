import sys

from pks4_lit.tables import main

sys.exit(main())
