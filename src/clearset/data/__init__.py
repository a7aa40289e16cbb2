"""Data model shared by every stage: manifest, image store, sources."""
