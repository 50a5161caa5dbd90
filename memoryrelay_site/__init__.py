"""The MemoryRelay site package.

Importing it (as every process does first: settings, ``manage.py``, the ASGI/WSGI modules,
the gunicorn worker class) caps the numeric libraries at one thread before numpy loads.
OpenBLAS otherwise starts a thread per core in every process, and under concurrent load
each embedding then waits for a core the other requests are using: the server scales with
processes instead (issue 7, point 10). An operator's own value of a variable wins.
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
