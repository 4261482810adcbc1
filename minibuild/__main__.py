"""Run the command line as ``python -m minibuild``."""

from minibuild.cli import main

if __name__ == "__main__":
    main()
