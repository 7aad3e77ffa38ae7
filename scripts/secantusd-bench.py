#!/usr/bin/env python3
"""SecantusDB for `ferry-bench --engines mongodb` at S=0.05 and above.

Runs `secantusd-py` (same arguments) with its oplog pruned rarely. As
shipped, the server prunes its oplog every 1,000 entries a commit emits,
and each prune walks past the open transaction's own entries: a
`ferry baseline` of 100,000 documents or more (one transaction) then
spends tens of minutes there. The benchmark's timed steps write about 1%
of that per transaction; this only makes its set-up feasible.

    python -m venv venv && venv/bin/pip install --pre secantusdb
    venv/bin/python scripts/secantusd-bench.py --host 127.0.0.1 --port 27018 \\
        --storage-path /tmp/sdb --oplog-max-entries 100000000 --cache-size 8G

(`--cache-size 8G`: with the default 1 GB, the baseline's transaction at
S=0.2 outgrows WiredTiger's cache and every operation waits on eviction.)
"""
import sys

import secantus.storage as storage
from secantus.cli import main

storage._OPLOG_PRUNE_INTERVAL = 10**9
sys.argv[0] = "secantusd-py"
sys.exit(main())
