"""Private implementation of the serving shim; import from :mod:`serving_shim` instead."""
