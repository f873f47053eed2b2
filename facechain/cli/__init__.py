"""The ``facechain`` command line: it only parses, calls the public Python API, and prints."""
