"""The ``torchworks`` command line; each verb's module is imported only when that verb runs."""
