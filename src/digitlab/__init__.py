"""digitlab: learn, evaluate and serve MNIST-family image classifiers."""
from digitlab.errors import DigitlabError

__version__ = "0.1.0"
__all__ = ["DigitlabError", "__version__"]
