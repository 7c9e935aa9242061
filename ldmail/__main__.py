"""`python -m ldmail`: the same command line as the `ldmail` console script."""

from .cli import main

if __name__ == "__main__":
    main()
