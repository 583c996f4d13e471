"""The workflow tests on a whole Cinder deployment (a package, so that its conftest and
modules do not shadow those of tests/)."""
