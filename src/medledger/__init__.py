"""MedLedger: a verifiable clinical-data exchange for hospital groups."""

__version__ = "0.1.0"
