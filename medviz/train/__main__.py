from medviz.train.cli import main

raise SystemExit(main())
