"""``python -m jaxport`` runs the command line."""

from jaxport.cli import main

if __name__ == "__main__":
    main()
