"""Text adversarial examples: attacks composed of a goal, a transformation, constraints
and a search (STYLE.md §4), named recipes from the literature, text models for the
tweets, and adversarial training by augmentation.

Modules (import what you need; nothing heavy loads until used):

* :mod:`advx.text.recipes` — ``deepwordbug``, ``pwws``, ``textfooler``, ``hotflip``;
* :mod:`advx.text.attack` — :class:`~advx.text.attack.TextAttack`, the composition;
* :mod:`advx.text.transformations`, :mod:`advx.text.constraints`,
  :mod:`advx.text.search`, :mod:`advx.text.goal` — its parts;
* :mod:`advx.text.result` — per-example results, metrics, word diffs (terminal, HTML);
* :mod:`advx.text.models` — ``bow``, ``wordcnn``, ``lstm``, ``minilm``;
* :mod:`advx.text.training` — training and adversarial augmentation;
* :mod:`advx.text.wordnet`, :mod:`advx.text.minilm`, :mod:`advx.text.embeddings` —
  the offline resources (WordNet 3.0, all-MiniLM-L6-v2).

Example:
    >>> from advx.text import models, recipes                     # doctest: +SKIP
    >>> clf = models.load("runs/tweets-wordcnn")                   # doctest: +SKIP
    >>> res = recipes.create("textfooler")(clf, ["I love this car"], [1])  # doctest: +SKIP
    >>> res[0].adversarial                                         # doctest: +SKIP
"""
