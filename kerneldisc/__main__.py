from kerneldisc.cli import main

raise SystemExit(main())
