from tinyshare.cli import main
import sys

sys.exit(main())
