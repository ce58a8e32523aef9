"""The HTTP API: FHIR R4 at /fhir/R4, health at /healthz and /readyz."""
