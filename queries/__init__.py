"""The SQL surface of finops, shipped inside the package as `finops.queries` (see pyproject.toml)."""
