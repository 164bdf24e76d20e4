"""Every family by name: the random ones (the default round-robin) and the corpus of known failures."""

from .corpus import make_corpus
from .families import FAMILIES as RANDOM_FAMILIES

FAMILIES = dict(RANDOM_FAMILIES, corpus=make_corpus)
DEFAULT_FAMILIES = list(RANDOM_FAMILIES)
