from dcu.cli import main

raise SystemExit(main())
