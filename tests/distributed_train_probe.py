"""`af train` under a launcher, logging each adapter write with the rank that made it.

Used by tests/test_training_distributed.py: ``accelerate launch ... tests/distributed_train_probe.py
train ...``; the log (``AF_SAVE_LOG``) gets one "RANK DIRECTORY" line per ``save_pretrained`` that writes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from peft import PeftModel

from af_tasks.app.cli import main

LOG = Path(os.environ["AF_SAVE_LOG"])
_save_pretrained = PeftModel.save_pretrained


def _logged_save_pretrained(self, save_directory, *args, **kwargs):
    if kwargs.get("is_main_process", True):
        with LOG.open("a") as log:
            log.write(f"{os.environ.get('RANK', '0')} {Path(save_directory).resolve()}\n")
    return _save_pretrained(self, save_directory, *args, **kwargs)


PeftModel.save_pretrained = _logged_save_pretrained

if __name__ == "__main__":
    sys.exit(main())
