"""Specimen barcodes (送检条码): group-unique values from a configured scheme, and labels.

:mod:`.scheme` defines the template and the institution code map, allocates and parses values;
:mod:`.sequences` holds the atomic per-institution, per-day counters; :mod:`.label` renders
Code 128 labels as SVG or PNG.
"""

from __future__ import annotations

from medledger.interop.barcode.label import find_cjk_font, render_label
from medledger.interop.barcode.scheme import (
    DEFAULT_TEMPLATE,
    BarcodeParts,
    BarcodeScheme,
    parse,
    scheme_from_mapping,
    scheme_from_yaml,
)
from medledger.interop.barcode.sequences import Sequences, allocate

__all__ = [
    "DEFAULT_TEMPLATE",
    "BarcodeParts",
    "BarcodeScheme",
    "Sequences",
    "allocate",
    "find_cjk_font",
    "parse",
    "render_label",
    "scheme_from_mapping",
    "scheme_from_yaml",
]
