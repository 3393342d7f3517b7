"""The playground: a local web page where a person makes an adversarial example and
watches the model fall for it (``advx playground``).

Five views over the same library objects the CLI uses: *Image* (a photo, a model, an
attack, eps in /255 steps, untargeted or targeted; original | perturbation | adversarial,
top-5 before and after, distances, queries, time, and the adversarial PNG to download),
*Defense* (the same example against an adversarially trained and a detector-guarded
model, then an adaptive attack), *Text* (a sentence through a text-attack recipe, edits
highlighted), *Transfer* (craft on one model, test on the others) and *Robustness*
(accuracy vs eps; penultimate-layer features of clean and adversarial examples in 2-D).

The page is served by FastAPI with a dependency-free front end (vanilla JS and CSS in
``static/``, nothing from a CDN), so it works offline.

Example:
    >>> from advx.playground import create_app, default_zoo         # doctest: +SKIP
    >>> app = create_app(default_zoo(small="digits", imagenet=False))  # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from advx.playground.app import create_app
from advx.playground.zoo import ModelEntry, Zoo, default_zoo

__all__ = ["ModelEntry", "Zoo", "create_app", "default_zoo"]
