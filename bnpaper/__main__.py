from bnpaper.cli import main

raise SystemExit(main())
