"""PLACEHOLDER (being written): provider bills allocated over observed usage; the unobserved rest."""
