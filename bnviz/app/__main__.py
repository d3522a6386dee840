import sys

from bnviz.app import main

sys.exit(main())
