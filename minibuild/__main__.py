"""Run the command line as ``python -m minibuild``."""

from minibuild.noop import main

if __name__ == "__main__":
    main()
