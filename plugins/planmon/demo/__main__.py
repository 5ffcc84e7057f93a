"""``python -m planmon.demo``: see planmon.demo.cli."""

from planmon.demo.cli import main

raise SystemExit(main())
