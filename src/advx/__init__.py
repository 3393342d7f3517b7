"""advx: adversarial examples made real.

Craft adversarial examples white-box and black-box, carry them across models, defend
against them and report the result. ``import advx`` is cheap: heavy optional pieces
(transformers, NLTK, matplotlib, FastAPI) load lazily inside the components that use them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
