"""cinder-promote: promote a Cinder replication target after a disaster."""

__version__ = "0.1.0"
