"""Knowledge bases: documents split into passages (``chunking``), embedded and searched by
meaning (``index``, ``base``), and the prompt that asks the model to cite them (``prompt``)."""
