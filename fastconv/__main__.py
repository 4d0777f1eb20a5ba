from fastconv.cli import main

raise SystemExit(main())
