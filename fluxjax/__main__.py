"""``python -m fluxjax`` runs the digits demo (see ``fluxjax.demo``)."""

from fluxjax.demo import main

if __name__ == "__main__":
    main()
