"""PLACEHOLDER (being written): GPU spend per job and UTC day, and idle capacity."""
