"""Clinical records: FHIR R4 resources, encrypted at rest, versioned, anchored on the ledger."""
