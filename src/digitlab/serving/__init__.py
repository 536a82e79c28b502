"""The recognition service: a FastAPI app serving the prediction API and the static drawing page."""
from digitlab.serving.app import create_app

__all__ = ["create_app"]
