from so8t.cli import main

raise SystemExit(main())
