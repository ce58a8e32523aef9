"""Ordering: who decides the next block. ``solo`` runs in-process; a cluster orderer comes later."""

from medledger.ordering.base import Committer, Orderer, Receipt
from medledger.ordering.solo import SoloOrderer

__all__ = ["Committer", "Orderer", "Receipt", "SoloOrderer"]
