"""Integration gateway: HL7 v2 over MLLP, SQL views, requisitions, specimen barcodes, result
return and recall, dictionaries (CodeSystem/ConceptMap) and subscriptions.

Every message is parsed into the neutral model of :mod:`medledger.interop.model`, whatever
interface it came through, and stored through the records layer, so the ledger anchors it and
the audit trail records it.
"""
