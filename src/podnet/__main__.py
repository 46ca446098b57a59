"""`python -m podnet`: the same command as `podnet`, as quick to start."""

from podnet.cli.main import main

main()
