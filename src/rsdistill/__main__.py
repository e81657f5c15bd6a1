from rsdistill.cli.main import main

raise SystemExit(main())
