"""Knowledge bases: documents split into passages (``chunking``, ``splitting``), embedded
and searched by meaning (``index``, ``base``: KnowledgeBase), the plain values they pass
around (``records``), and how passages reach the model as numbered sources (``sources``,
``prompt``)."""
